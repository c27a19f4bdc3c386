// Shared helpers for the client tests: where the test stack is, GraphQL over
// HTTP, and small waiting utilities. Nothing here speaks a subscription
// protocol; the tests use the third-party clients for that.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { randomUUID, createHmac } from 'node:crypto';
import { SignJWT } from 'jose';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');

/**
 * The test stack's addresses: $COMMAND_URL, $QUERY_URL and $QUERY_WS_URL when
 * set, else the env file written by `scripts/teststack start`
 * ($TESTSTACK_ENV, default .cache/teststack/env).
 */
export function stack() {
  const file = process.env.TESTSTACK_ENV || path.join(root, '.cache/teststack/env');
  const vars = {};
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) vars[m[1]] = m[2];
    }
  } catch (err) {
    if (!process.env.COMMAND_URL) {
      throw new Error(`no test stack: ${file} is missing (run scripts/teststack start, or make test-clients)`);
    }
  }
  const get = (k) => process.env[k] || vars[k];
  const s = {
    commandURL: get('COMMAND_URL'),
    queryURL: get('QUERY_URL'),
    queryWsURL: get('QUERY_WS_URL'),
    log: get('TESTSTACK_LOG'),
    jwtSecret: get('SPLITSTREAM_JWT_SECRET'),
    tokenSecret: get('SPLITSTREAM_TOKEN_SECRET'),
  };
  for (const [k, v] of Object.entries(s)) {
    if (!v && k !== 'log') throw new Error(`test stack: ${k} is not set in ${file}`);
  }
  s.gatewayURL = get('GATEWAY_URL'); // the gateway's tests require them
  s.gatewayWsURL = get('GATEWAY_WS_URL');
  return s;
}

/**
 * Mints an HS256 JWT with the stack's secret, as an identity provider would
 * (with jose, a third-party library): sub, roles ["admin"] when admin, and
 * an exp ttlSeconds from now.
 */
export async function token(s, sub, { admin = false, ttlSeconds = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(admin ? { roles: ['admin'] } : {})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .sign(new TextEncoder().encode(s.jwtSecret));
}

let adminToken;
/** The token every helper sends unless told otherwise: an admin's (never rate limited). */
export async function admin(s) {
  adminToken ??= await token(s, 'client-tests-admin', { admin: true, ttlSeconds: 6 * 3600 });
  return adminToken;
}

/**
 * A read-your-writes token for a place in the log, signed as the command
 * service signs them (v2: version byte, tx and position as big-endian 64-bit
 * integers, the first 16 bytes of an HMAC-SHA256 keyed by the token secret).
 * Only the tests need this: to name a place no write has reached.
 */
export function readToken(s, tx, position, lane = 255) {
  // Version 3: a count of points, then per point the lane (255: the whole
  // log), tx and position; then 16 bytes of HMAC-SHA256 (auth/readtoken.go).
  const key = createHmac('sha256', s.tokenSecret).update('splitstream read-your-writes token').digest();
  const body = Buffer.alloc(2 + 17);
  body[0] = 3;
  body[1] = 1;
  body[2] = lane;
  body.writeBigUInt64BE(BigInt(tx), 3);
  body.writeBigUInt64BE(BigInt(position), 11);
  const mac = createHmac('sha256', key).update(body).digest().subarray(0, 16);
  return Buffer.concat([body, mac]).toString('base64url');
}

/**
 * POST a GraphQL request; returns the whole response body ({data, errors,
 * extensions}). It is sent as an admin unless bearer says another token
 * (null: none, anonymous).
 */
export async function gql(base, query, variables = {}, { bearer } = {}) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (bearer === undefined) bearer = await admin(stack());
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`POST ${base}/graphql: HTTP ${res.status}, not JSON: ${text.slice(0, 500)}`);
  }
  return body;
}

/** Like gql, but fails on any error and returns data. */
export async function gqlData(base, query, variables = {}, opts = {}) {
  const body = await gql(base, query, variables, opts);
  if (body.errors?.length) {
    throw new Error(`GraphQL errors for ${query.trim().split('\n')[0]} ${JSON.stringify(variables)}: ${JSON.stringify(body.errors)}`);
  }
  return body.data;
}

/** A string unique to this run, for names and categories. */
export function unique(prefix) {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

const CREATE = `mutation Create($input: CreateProductInput!) { createProduct(input: $input) { id version token } }`;
const RENAME = `mutation Rename($input: RenameProductInput!) { renameProduct(input: $input) { id version token } }`;
const REVIEW = `mutation Review($input: AddReviewInput!) { addReview(input: $input) { id version token } }`;

export async function createProduct(s, fields = {}) {
  const input = {
    name: unique('Client test product'),
    description: 'Created by test/clients.',
    category: 'client-tests',
    priceCents: 1999,
    currency: 'EUR',
    stock: 10,
    ...fields,
  };
  const d = await gqlData(s.commandURL, CREATE, { input });
  return { ...d.createProduct, input };
}

export async function renameProduct(s, id, name) {
  return (await gqlData(s.commandURL, RENAME, { input: { id, name } })).renameProduct;
}

export async function addReview(s, productId, fields = {}) {
  const input = { productId, author: 'client-test', rating: 4, comment: 'Works as described.', ...fields };
  return (await gqlData(s.commandURL, REVIEW, { input })).addReview;
}

/** Reads the product once the token's write is visible. */
export async function productAt(s, id, token, selection = 'id name version') {
  const d = await gqlData(s.queryURL, `query P($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { ${selection} } }`, { id, t: token });
  return d.product;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects after ms with a message naming what was awaited. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** The query service's open subscriptions (its splitstream_subscriptions gauge). */
export async function openSubscriptions(s) {
  const res = await fetch(`${s.queryURL}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  const m = /^splitstream_subscriptions\s+([0-9.e+]+)\s*$/m.exec(text);
  if (!m) throw new Error('the query service exports no splitstream_subscriptions gauge');
  return Number(m[1]);
}

/**
 * Waits until the query service holds exactly n subscriptions. A subscribe
 * message has no acknowledgement in either protocol, so this is how a test
 * knows the server registered its subscription before it writes (otherwise
 * the write could race the registration and the test would hang or flake).
 * The tests run one at a time (--test-concurrency=1) on a stack of their
 * own, so the gauge counts only the current test's subscriptions.
 */
export async function waitForSubscriptions(s, n, ms = 10_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await openSubscriptions(s);
    if (last === n) return;
    if (Date.now() > deadline) throw new Error(`the query service holds ${last} subscriptions, want ${n} (after ${ms} ms)`);
    await sleep(25);
  }
}

/**
 * A queue of messages from a subscription: push from the client's callbacks,
 * await next() in the test.
 */
export class Inbox {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.waiters = [];
    this.error = null;
    this.done = false;
  }
  push(v) {
    const w = this.waiters.shift();
    if (w) w.resolve(v);
    else this.items.push(v);
  }
  fail(err) {
    this.error = err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
    for (const w of this.waiters.splice(0)) w.reject(this.error);
  }
  complete() {
    this.done = true;
    for (const w of this.waiters.splice(0)) w.reject(new Error(`${this.name}: completed`));
  }
  next(ms = 15_000) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.error) return Promise.reject(this.error);
    if (this.done) return Promise.reject(new Error(`${this.name}: completed`));
    let waiter;
    const p = new Promise((resolve, reject) => {
      waiter = { resolve, reject };
      this.waiters.push(waiter);
    });
    return withTimeout(p, ms, `the next message on ${this.name}`).catch((err) => {
      // Drop this waiter so a later message is not handed to a test that gave up.
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw err;
    });
  }
}
