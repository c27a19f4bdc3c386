// The admin console in a real browser (issue 16): Debian's chromium, driven
// by playwright-core, opens the console on the admin listener, enters an
// admin's token, sees a dead letter this test makes (a product whose
// Elasticsearch mapping refuses its latest reviews), fixes the mapping,
// replays the letters from the page and sees the count drop to zero. Every
// request to a host other than loopback is blocked and reported. The
// screenshot, taken while the dead letter shows, goes to
// docs/screenshots/admin-console.png (the README shows it).
//
// Reads the stack's addresses from the env file of scripts/teststack
// ($TESTSTACK_ENV) or the environment: ADMIN_URL, COMMAND_URL,
// TESTSTACK_INDEX_PREFIX, SPLITSTREAM_JWT_SECRET; ES_URL for Elasticsearch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { SignJWT } from 'jose';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOT_DIR || path.join(root, 'docs/screenshots');
const ES = process.env.ES_URL || 'http://127.0.0.1:9200';
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

function stack() {
  const file = process.env.TESTSTACK_ENV || path.join(root, '.cache/teststack/env');
  const vars = {};
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) vars[m[1]] = m[2];
    }
  } catch {
    /* the environment may carry them instead */
  }
  const get = (k) => process.env[k] || vars[k];
  const s = { adminURL: get('ADMIN_URL'), commandURL: get('COMMAND_URL'), prefix: get('TESTSTACK_INDEX_PREFIX'), secret: get('SPLITSTREAM_JWT_SECRET') };
  for (const [k, v] of Object.entries(s)) if (!v) throw new Error(`no test stack: ${k} is not set (run scripts/teststack start; ${file})`);
  return s;
}

const s = stack();

function token(roles) {
  return new SignJWT({ roles })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('e2e-console-admin')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(s.secret));
}

async function gql(query, variables = {}) {
  const res = await fetch(`${s.commandURL}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await token(['admin'])}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = await res.json();
  if (body.errors?.length) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function es(method, p, body) {
  const res = await fetch(`${ES}${p}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const out = await res.json();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(out)}`);
  return out;
}

/**
 * Points the products alias at a copy of its index whose mapping refuses
 * any latestReviews entry, as cmd/splitstream/dead_test.go does; returns
 * the new index (teststack's cleanup removes it with the stack's prefix).
 */
async function strictProducts() {
  const alias = `${s.prefix}-products`;
  const current = await es('GET', `/${alias}/_mapping`);
  const [oldIndex] = Object.keys(current);
  const mappings = current[oldIndex].mappings;
  assert.ok(mappings.properties.latestReviews, 'the products mapping has latestReviews');
  mappings.properties.latestReviews = { type: 'object', dynamic: 'strict', properties: {} };
  const strict = `${s.prefix}-products-strict-e2e`;
  await es('PUT', `/${strict}`, { settings: { number_of_shards: 1, number_of_replicas: 0 }, mappings });
  await es('POST', '/_aliases', {
    actions: [{ remove: { index: oldIndex, alias } }, { add: { index: strict, alias, is_write_index: true } }],
  });
  return strict;
}

function isLocal(url) {
  try {
    const u = new URL(url);
    return ['data:', 'blob:', 'about:'].includes(u.protocol) || LOCAL_HOSTS.has(u.hostname);
  } catch {
    return false;
  }
}

let browser;
let userDataDir;
const blocked = [];
const pageErrors = [];

before(async () => {
  userDataDir = mkdtempSync(path.join(tmpdir(), 'splitstream-e2e-console-'));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    deviceScaleFactor: 1,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    ],
    timeout: 60_000,
  });
  await browser.route((url) => !isLocal(url.href), async (route) => {
    blocked.push(route.request().url());
    await route.abort('blockedbyclient');
  });
});

after(async () => {
  await browser?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

test('the admin console shows a dead letter and replays it', async () => {
  const strict = await strictProducts();
  const { createProduct } = await gql(
    'mutation { createProduct(input: {name: "Console kettle", description: "e2e", category: "kitchen", priceCents: 1999, currency: "EUR", stock: 3}) { id } }');
  const id = createProduct.id;
  await gql('mutation($id: ID!) { addReview(input: {productId: $id, author: "Ada", rating: 5, comment: "boils"}) { id } }', { id });

  const page = await browser.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  try {
    await page.goto(`${s.adminURL}/`, { waitUntil: 'load' });
    // A customer's token is refused, and the page says why.
    await page.fill('#token', await token([]));
    await page.click('#connect');
    await page.locator('#login-error', { hasText: 'admins only' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#main').isVisible(), false);
    pageErrors.length = 0; // chromium logs the refused request itself; that one was expected

    await page.fill('#token', await token(['admin']));
    await page.click('#connect');
    await page.locator('#main').waitFor({ state: 'visible', timeout: 10_000 });
    assert.equal(await page.inputValue('#token'), '', 'the token field is emptied once read');

    const row = page.locator(`#dead tr[data-doc="product/${id}"]`);
    await row.waitFor({ timeout: 60_000 }); // the page refreshes every 5 s
    assert.match(await row.locator('td.reason').innerText(), /strict_dynamic_mapping_exception/);
    const before = Number(await page.locator('#dead-count').innerText());
    assert.ok(before >= 1, `dead-letter count ${before}`);
    await page.locator('[data-role="projector"]').waitFor({ timeout: 5_000 });
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'admin-console.png'), fullPage: true });

    // Replay before the fix: refused again, the page says so and the row stays.
    await row.locator('button[data-action="replay"]').click();
    await page.locator('#dead-error', { hasText: 'still dead' }).waitFor({ timeout: 30_000 });
    await row.waitFor({ timeout: 5_000 });

    // The fix: the strict index learns latestReviews' fields; then replay from the page.
    await es('PUT', `/${strict}/_mapping`, { properties: { latestReviews: { properties: { id: { type: 'keyword' }, createdAt: { type: 'date' } } } } });
    await row.locator('button[data-action="replay"]:not([disabled])').click();
    await row.waitFor({ state: 'detached', timeout: 30_000 });
    await page.locator('#dead-count', { hasText: /^0$/ }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#dead-error').innerText(), '');
  } catch (e) {
    mkdirSync(path.join(root, '.cache/e2e'), { recursive: true });
    await page.screenshot({ path: path.join(root, '.cache/e2e/admin-console-failure.png') }).catch(() => {});
    throw e;
  }
  assert.deepEqual(blocked, [], 'the console asked for no host but loopback');
  assert.deepEqual(pageErrors, [], 'no script errors on the page');
});
