// End-to-end in a real browser (issue 7, part 3): Debian's chromium, driven by
// playwright-core, opens the query playground, starts a productChanged
// subscription there, renames the product in the command playground, and sees
// the new name arrive in the query playground's result pane. Every request to
// a host other than loopback is blocked and reported. Screenshots of both
// playgrounds go to docs/screenshots/ (the README shows them).
//
// Reads the stack's addresses like test/clients does: $COMMAND_URL and
// $QUERY_URL, or the env file of scripts/teststack ($TESTSTACK_ENV).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';
import { SignJWT } from 'jose';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOT_DIR || path.join(root, 'docs/screenshots');
const VIEWPORT = { width: 1280, height: 800 };
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
    /* the environment may carry the URLs instead */
  }
  const get = (k) => process.env[k] || vars[k];
  const s = { commandURL: get('COMMAND_URL'), queryURL: get('QUERY_URL'), jwtSecret: get('SPLITSTREAM_JWT_SECRET'), gatewayURL: get('GATEWAY_URL') };
  if (!s.commandURL || !s.queryURL) throw new Error(`no test stack: set COMMAND_URL and QUERY_URL, or run scripts/teststack start (${file})`);
  return s;
}

const s = stack();

/**
 * An admin's token, minted with the stack's secret (jose, as an identity
 * provider would), as `make run` prints one for a newcomer to paste.
 */
async function adminToken() {
  if (!s.jwtSecret) throw new Error('the test stack has no SPLITSTREAM_JWT_SECRET (scripts/teststack writes it to its env file)');
  return new SignJWT({ roles: ['admin'] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('e2e-admin')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(s.jwtSecret));
}

function isLocal(url) {
  try {
    const u = new URL(url);
    if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') return true;
    return LOCAL_HOSTS.has(u.hostname);
  } catch {
    return false;
  }
}

async function gql(base, query, variables = {}) {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await adminToken()}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = await res.json();
  if (body.errors?.length) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function openSubscriptions() {
  const text = await (await fetch(`${s.queryURL}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const m = /^splitstream_subscriptions\s+([0-9.e+]+)\s*$/m.exec(text);
  return m ? Number(m[1]) : null;
}

let context;
let userDataDir;
const requests = []; // every URL any page asked for, HTTP and WebSocket
const blocked = []; // the non-loopback ones, aborted
const consoleErrors = [];

before(async () => {
  userDataDir = mkdtempSync(path.join(tmpdir(), 'splitstream-e2e-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: VIEWPORT,
    deviceScaleFactor: 1,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // Belt and braces under the routes below: the browser itself cannot resolve
      // any host but loopback, so even traffic no page starts stays on the machine.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    ],
    timeout: 60_000,
  });
  // Every HTTP(S) request from any page: loopback passes, anything else is aborted and recorded.
  await context.route(
    (url) => !isLocal(url.href),
    async (route) => {
      blocked.push(route.request().url());
      await route.abort('blockedbyclient');
    },
  );
  // WebSockets are not HTTP routes; block the non-loopback ones too.
  await context.routeWebSocket(
    (url) => !isLocal(url.href),
    (ws) => {
      blocked.push(ws.url());
      ws.close({ code: 1008, reason: 'blocked by the e2e test' });
    },
  );
  context.on('request', (r) => requests.push(r.url()));
  context.on('page', watchPage);
});

function watchPage(page) {
  page.on('websocket', (ws) => requests.push(ws.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: uncaught ${e.message}`));
}

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

/** Opens a playground and waits until GraphiQL has rendered its query editor and loaded the schema. */
async function openPlayground(url) {
  const page = await context.newPage();
  watchPage(page);
  const schemaLoaded = page.waitForResponse((r) => r.url().endsWith('/graphql') && r.request().method() === 'POST', { timeout: 30_000 });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 30_000 });
  await schemaLoaded; // the introspection query: the editor knows the schema from here on
  return page;
}

/**
 * Puts an operation into the playground: selects the example tab whose name
 * matches (the page may open on another one), then sets the query editor
 * through its CodeMirror instance and empties the variables.
 *
 * GraphiQL parses the editor 100 ms after a change (debounced) and only then
 * knows the operation's name; a run started before that sends the previous
 * tab's operationName ("operation SearchProducts not found"). So the
 * operation is named, and we wait until GraphiQL reports that name on both
 * the editor and the active tab before anyone presses Run.
 */
async function setOperation(page, tabName, query, operationName) {
  const tab = page.locator('.graphiql-tab', { has: page.locator(`button[title="${tabName}"]`) }).first();
  if (await tab.count()) {
    await tab.locator(`button[title="${tabName}"]`).click();
    await page.locator('.graphiql-tab-active', { has: page.locator(`button[title="${tabName}"]`) }).waitFor({ timeout: 5_000 });
  }
  await page.evaluate((q) => {
    const editor = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror;
    editor.setValue(q);
    editor.focus();
    const vars = document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
    vars?.CodeMirror.setValue('{}');
  }, query);
  await page.waitForFunction(
    ([q, name]) => {
      const editor = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror;
      const active = document.querySelector('.graphiql-tab-active button[title]');
      return editor.getValue() === q && editor.operationName === name && active?.getAttribute('title') === name;
    },
    [query, operationName],
    { timeout: 10_000 },
  );
}

/**
 * Logs in as a newcomer would: opens the Headers pane under the query
 * editor and puts the bearer token there.
 */
async function setAuthorization(page, token) {
  await page.locator('.graphiql-editor-tools').getByRole('button', { name: 'Headers' }).click();
  const headers = JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2);
  await page.waitForFunction(() => document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror'), null, { timeout: 5_000 });
  await page.evaluate((h) => {
    document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror').CodeMirror.setValue(h);
  }, headers);
}

async function run(page) {
  await page.getByRole('button', { name: /Execute query/ }).click();
}

/** The result pane's text. */
function resultText(page) {
  return page.evaluate(() => {
    const cm = document.querySelector('.graphiql-response .CodeMirror');
    return cm?.CodeMirror ? cm.CodeMirror.getValue() : (document.querySelector('.graphiql-response')?.innerText ?? '');
  });
}

async function waitForResult(page, predicate, what, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    last = await resultText(page);
    if (predicate(last)) return last;
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}; the result pane shows: ${last || '(nothing)'}`);
}

test('a rename in the command playground shows up live in the query playground', { timeout: 150_000 }, async (t) => {
  try {
    await renameShowsUpLive(t);
  } catch (err) {
    // Leave evidence for CI: a screenshot of every open page and the browser's console errors.
    const dir = path.join(root, '.cache/e2e');
    mkdirSync(dir, { recursive: true });
    for (const [i, page] of context.pages().entries()) {
      await page.screenshot({ path: path.join(dir, `failure-${i}.png`) }).catch(() => {});
      t.diagnostic(`failure screenshot: ${path.join(dir, `failure-${i}.png`)} (${page.url()})`);
    }
    if (consoleErrors.length) t.diagnostic(`browser console errors:\n${consoleErrors.join('\n')}`);
    throw err;
  }
});

async function renameShowsUpLive(t) {
  // A product to watch, created over plain HTTP and read back through its token.
  const suffix = randomUUID().slice(0, 6);
  const created = (await gql(s.commandURL, `mutation($input: CreateProductInput!) { createProduct(input: $input) { id version token } }`, {
    input: { name: 'Trail running shoes', description: 'Light, grippy and quick to dry.', category: 'shoes', priceCents: 8999, currency: 'EUR', stock: 25 },
  })).createProduct;
  const seen = (await gql(s.queryURL, `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id name version } }`, { id: created.id, t: created.token })).product;
  assert.equal(seen.name, 'Trail running shoes');

  // 1. The query playground: start the subscription.
  const query = await openPlayground(`${s.queryURL}/`);
  const wsOpened = query.waitForEvent('websocket', { timeout: 20_000 });
  const subscription = `subscription WatchProduct {\n  productChanged(\n    id: "${created.id}"\n  ) {\n    id\n    name\n    version\n  }\n}\n`;
  await setOperation(query, 'ProductChanged', subscription, 'WatchProduct');
  const before = await openSubscriptions();
  await run(query);
  const ws = await wsOpened;
  assert.equal(new URL(ws.url()).pathname, '/graphql', `the subscription runs over WebSocket: ${ws.url()}`);
  const frames = [];
  ws.on('framereceived', (f) => frames.push(String(f.payload)));
  // The protocols do not acknowledge a subscribe, so wait until the server holds it
  // before writing; otherwise the rename could be published before anyone listens.
  if (before !== null) {
    const deadline = Date.now() + 15_000;
    while ((await openSubscriptions()) !== before + 1) {
      if (Date.now() > deadline) throw new Error('the query service never registered the playground\'s subscription');
      await query.waitForTimeout(50);
    }
  } else {
    await query.waitForTimeout(1_000);
  }

  // 2. The command playground, in a second page: rename the product.
  const command = await openPlayground(`${s.commandURL}/`);
  const newName = `Trail running shoes, renamed ${suffix}`;
  const mutation = `mutation RenameTheProduct {\n  renameProduct(input: {\n    id: "${created.id}"\n    name: "${newName}"\n  }) {\n    id\n    version\n    token\n  }\n}\n`;
  await setOperation(command, 'RenameProduct', mutation, 'RenameTheProduct');
  await setAuthorization(command, await adminToken());
  await run(command);
  const answer = JSON.parse(await waitForResult(command, (txt) => txt.includes('"renameProduct"') || txt.includes('"errors"'), 'the renameProduct answer'));
  assert.ok(!answer.errors, `renameProduct failed in the playground: ${JSON.stringify(answer.errors)}`);
  assert.equal(answer.data.renameProduct.id, created.id);
  assert.ok(answer.data.renameProduct.version > created.version);
  await command.screenshot({ path: path.join(SHOTS, 'command-playground.png') });

  // 3. Back in the query playground: the renamed product arrives, read from the index.
  await query.bringToFront();
  const live = JSON.parse(await waitForResult(query, (txt) => txt.includes(newName), `"${newName}" in the query playground`));
  assert.deepEqual(live.data.productChanged, { id: created.id, name: newName, version: answer.data.renameProduct.version });
  assert.ok(frames.some((f) => f.includes(newName)), 'the new name came over the WebSocket');
  await query.screenshot({ path: path.join(SHOTS, 'query-playground.png') });

  // 4. Nothing left the machine.
  t.diagnostic(`requests: ${requests.length} (${[...new Set(requests.map((u) => new URL(u).host))].join(', ')})`);
  if (consoleErrors.length) t.diagnostic(`browser console errors:\n${consoleErrors.join('\n')}`);
  assert.deepEqual(blocked, [], `requests to other hosts were attempted (and blocked): ${blocked.join(', ')}`);
  assert.deepEqual(requests.filter((u) => !isLocal(u)), []);
}

/** Runs body; on failure leaves screenshots of every page and the console errors in .cache/e2e. */
async function withEvidence(t, name, body) {
  try {
    await body(t);
  } catch (err) {
    const dir = path.join(root, '.cache/e2e');
    mkdirSync(dir, { recursive: true });
    for (const [i, page] of context.pages().entries()) {
      await page.screenshot({ path: path.join(dir, `${name}-failure-${i}.png`) }).catch(() => {});
      t.diagnostic(`failure screenshot: ${path.join(dir, `${name}-failure-${i}.png`)} (${page.url()})`);
    }
    if (consoleErrors.length) t.diagnostic(`browser console errors:\n${consoleErrors.join('\n')}`);
    throw err;
  }
}

test('the gateway\'s GraphiQL: a subscription and a mutation in one page', { timeout: 150_000 }, (t) => withEvidence(t, 'gateway', gatewayPage));

/** Waits until the query service holds n subscriptions. */
async function subscriptionsReach(page, n) {
  const deadline = Date.now() + 15_000;
  while ((await openSubscriptions()) !== n) {
    if (Date.now() > deadline) throw new Error(`the query service never reached ${n} subscriptions`);
    await page.waitForTimeout(50);
  }
}

async function gatewayPage() {
  assert.ok(s.gatewayURL, 'GATEWAY_URL is not set (scripts/teststack writes it)');
  const created = (await gql(s.gatewayURL, `mutation($input: CreateProductInput!) { createProduct(input: $input) { id version token } }`, {
    input: { name: 'Gateway kettle', category: 'kitchen', priceCents: 2599, currency: 'EUR', stock: 5 },
  })).createProduct;
  await gql(s.gatewayURL, `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id } }`, { id: created.id, t: created.token });

  // One page, the gateway's: the subscription in one tab ...
  const page = await openPlayground(`${s.gatewayURL}/`);
  const wsOpened = page.waitForEvent('websocket', { timeout: 20_000 });
  await setOperation(page, 'ProductChanged', `subscription GatewayWatch {\n  productChanged(id: "${created.id}") {\n    id\n    name\n    version\n  }\n}\n`, 'GatewayWatch');
  const before = await openSubscriptions();
  await run(page);
  const ws = await wsOpened;
  assert.equal(new URL(ws.url()).origin, new URL(s.gatewayURL).origin.replace('http', 'ws'), 'the subscription runs over the gateway\'s WebSocket');
  const frames = [];
  ws.on('framereceived', (f) => frames.push(String(f.payload)));
  await subscriptionsReach(page, before + 1);

  // ... and the mutation from the same page, to the same endpoint, while the subscription runs.
  const newName = `Gateway kettle, renamed ${randomUUID().slice(0, 6)}`;
  const answer = await page.evaluate(async ([url, token, id, name]) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: 'mutation($id: ID!, $n: String!) { renameProduct(input: {id: $id, name: $n}) { id version } }', variables: { id, n: name } }),
    });
    return res.json();
  }, [`${s.gatewayURL}/graphql`, await adminToken(), created.id, newName]);
  assert.ok(!answer.errors, `renameProduct through the gateway: ${JSON.stringify(answer.errors)}`);
  const live = JSON.parse(await waitForResult(page, (txt) => txt.includes(newName), `"${newName}" in the gateway's GraphiQL`));
  assert.deepEqual(live.data.productChanged, { id: created.id, name: newName, version: answer.data.renameProduct.version });
  assert.ok(frames.some((f) => f.includes(newName)), 'the new name came over the gateway\'s WebSocket');
  await page.screenshot({ path: path.join(SHOTS, 'gateway-playground.png') });
  assert.deepEqual(blocked, [], `requests to other hosts were attempted (and blocked): ${blocked.join(', ')}`);
}

mkdirSync(SHOTS, { recursive: true });
