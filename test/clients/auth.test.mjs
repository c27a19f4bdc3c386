// Identity and access through third-party clients (issue 12): tokens minted
// with jose as an identity provider would, subscriptions with graphql-ws'
// connectionParams, the 4403 closes, and per-caller rate limits.
import { test, before, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import {
  stack, token, gql, gqlData, createProduct, renameProduct, productAt, unique, waitForSubscriptions, sleep, withTimeout,
} from './lib/stack.mjs';
import { modernClient } from './lib/clients.mjs';

const s = stack();
const open = [];
before(async () => waitForSubscriptions(s, 0));
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  await waitForSubscriptions(s, 0);
});
after(async () => {
  for (const c of open.splice(0)) await c.close();
});

const bearer = (t) => ({ authorization: `Bearer ${t}` });

/** A WebSocket class that sends headers with the upgrade request. */
const withHeaders = (headers) => class extends WebSocket {
  constructor(url, protocols) { super(url, protocols, { headers }); }
};

/** Opens a graphql-ws connection with params (and upgrade headers) and resolves with its close event, never acking. */
function closeOf(params, headers) {
  return new Promise((resolve, reject) => {
    const client = createClient({
      url: s.queryWsURL, webSocketImpl: headers ? withHeaders(headers) : WebSocket, lazy: false, retryAttempts: 0, connectionParams: params,
      onNonLazyError: () => {}, // the close is what the test awaits
      on: {
        connected: () => reject(new Error('connection_ack for a refused token')),
        closed: (e) => resolve({ code: e.code, reason: e.reason, at: Date.now() }),
      },
    });
    open.push({ close: () => client.dispose() });
  });
}

/** Places an order as customer and waits until the saga has decided it. */
async function settledOrder(customer, tok) {
  const product = await createProduct(s, { name: unique('Ordered product'), stock: 100 });
  await productAt(s, product.id, product.token);
  const placed = (await gqlData(s.commandURL,
    `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { id token } }`,
    { in: { customerId: customer, lines: [{ productId: product.id, quantity: 1 }] } }, { bearer: tok })).placeOrder;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { order } = await gqlData(s.queryURL, `query($id: ID!, $t: String) { order(id: $id, consistentWith: $t) { id status customerId } }`,
      { id: placed.id, t: placed.token }, { bearer: tok });
    if (order && order.status !== 'PENDING') return { product, order };
    if (Date.now() > deadline) throw new Error(`order ${placed.id} still ${order?.status} after 30 s`);
    await sleep(250);
  }
}

test('graphql-ws with connectionParams: orderChanged reaches its customer, and nothing of it another customer', async () => {
  const alice = unique('alice');
  const bob = unique('bob');
  const aliceTok = await token(s, alice);
  const bobTok = await token(s, bob);
  const { product, order } = await settledOrder(alice, aliceTok);
  assert.equal(order.customerId, alice);

  const ORDER = `subscription($id: ID!) { orderChanged(id: $id) { id status customerId } }`;
  const mine = await modernClient(s.queryWsURL, { connectionParams: bearer(aliceTok) });
  open.push(mine);
  const aliceInbox = mine.subscribe(ORDER, { id: order.id }, 'alice orderChanged');
  const theirs = await modernClient(s.queryWsURL, { connectionParams: bearer(bobTok) });
  open.push(theirs);
  const bobInbox = theirs.subscribe(ORDER, { id: order.id }, 'bob orderChanged(alice order)');
  // On bob's connection too: a change bob may see, as a sentinel that
  // whatever the server would have sent him of alice's order came first.
  const sentinel = theirs.subscribe(`subscription($id: ID!) { productChanged(id: $id) { id name } }`, { id: product.id }, 'bob productChanged');
  await waitForSubscriptions(s, 3);

  const cancelled = await gqlData(s.commandURL, `mutation($id: ID!) { cancelOrder(input: {id: $id, reason: "changed my mind"}) { id } }`,
    { id: order.id }, { bearer: aliceTok });
  assert.equal(cancelled.cancelOrder.id, order.id);
  const got = await aliceInbox.next();
  assert.ok(!got.errors, JSON.stringify(got.errors));
  assert.equal(got.data.orderChanged.id, order.id);
  assert.equal(got.data.orderChanged.status, 'CANCELLED');

  const name = unique('Renamed after the cancel');
  await renameProduct(s, product.id, name);
  // (The cancel releases the order's stock, a change of the product too.)
  for (;;) {
    const p = await sentinel.next();
    assert.ok(p.data?.productChanged, JSON.stringify(p));
    if (p.data.productChanged.name === name) break;
  }
  assert.deepEqual(bobInbox.items, [], 'bob received something of alice\'s order');
  assert.equal(bobInbox.error, null, `bob's subscription failed: ${bobInbox.error}`);
});

test('graphql-ws: a bad token in connection_init closes the socket with 4403', async () => {
  const expired = await token(s, 'carol', { ttlSeconds: -120 });
  const otherKey = 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYXJvbCIsImV4cCI6OTk5OTk5OTk5OX0.' + 'A'.repeat(43);
  for (const [what, params] of [
    ['garbage', { authorization: 'Bearer not-a-jwt' }],
    ['expired', bearer(expired)],
    ['bad signature', { Authorization: otherKey }],
  ]) {
    const { code, reason } = await withTimeout(closeOf(params), 10_000, `the close for a ${what} token`);
    assert.equal(code, 4403, `${what}: closed with ${code} (${reason})`);
  }
  // The same token in the upgrade request's Authorization header.
  const { code, reason } = await withTimeout(closeOf(undefined, { authorization: `Bearer ${expired}` }), 10_000, 'the close for a header token');
  assert.equal(code, 4403, `expired header token: closed with ${code} (${reason})`);
});

test('graphql-ws: a 3-second token is closed with 4403 within 5 s of its expiry', async () => {
  const now = Math.floor(Date.now() / 1000);
  const tok = await token(s, unique('short-lived'), { ttlSeconds: 3 });
  const expMs = (now + 3) * 1000;
  let closed;
  const done = new Promise((resolve) => {
    const client = createClient({
      url: s.queryWsURL, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0, connectionParams: bearer(tok),
      onNonLazyError: () => {},
      on: { closed: (e) => { closed = { code: e.code, reason: e.reason, at: Date.now() }; resolve(); } },
    });
    open.push({ close: () => client.dispose() });
    client.subscribe({ query: `subscription { productsChanged { id } }` }, { next() {}, error() {}, complete() {} });
  });
  await withTimeout(done, 15_000, 'the server to close the expired connection');
  assert.equal(closed.code, 4403, `closed with ${closed.code} (${closed.reason})`);
  const late = closed.at - expMs;
  assert.ok(late >= -1000, `closed ${-late} ms before the expiry`);
  assert.ok(late <= 5000, `closed ${late} ms after the expiry, want within 5 s`);
});

test('a flood from one caller gets 429 with Retry-After and RATE_LIMITED; another caller is served', async () => {
  const flooder = await token(s, unique('flooder'));
  const other = await token(s, unique('patient'));
  // Far more than the limit allows in the time the flood takes: the stack
  // runs with SPLITSTREAM_RATE_LIMIT (make test-clients: 10/s, a burst of 20).
  const N = 400;
  let limited = 0;
  let retryAfter = null;
  let codeSeen = null;
  const one = async () => {
    const res = await fetch(`${s.queryURL}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${flooder}` },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    const body = await res.json();
    if (res.status === 429) {
      limited++;
      retryAfter = res.headers.get('retry-after');
      codeSeen = body.errors?.[0]?.extensions?.code;
    }
  };
  const workers = Array.from({ length: 20 }, async () => { for (let i = 0; i < N / 20; i++) await one(); });
  // Meanwhile the other caller is served, every time.
  const served = (async () => {
    for (let i = 0; i < 5; i++) {
      const body = await gql(s.queryURL, '{ __typename }', {}, { bearer: other });
      assert.ok(!body.errors, `the other caller: ${JSON.stringify(body.errors)}`);
    }
  })();
  await Promise.all([...workers, served]);
  assert.ok(limited > 0, `none of ${N} flooding requests was limited`);
  assert.equal(codeSeen, 'RATE_LIMITED');
  assert.ok(Number(retryAfter) >= 1, `Retry-After ${retryAfter}`);
});

test('HTTP: no token, another customer\'s order and admin-only fields follow the policy', async () => {
  const alice = unique('alice');
  const aliceTok = await token(s, alice);
  const bobTok = await token(s, unique('bob'));
  const { order } = await settledOrder(alice, aliceTok);
  const READ = `query($id: ID!) { order(id: $id) { id } }`;
  const anon = await gql(s.queryURL, READ, { id: order.id }, { bearer: null });
  assert.equal(anon.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', JSON.stringify(anon));
  const bobs = await gql(s.queryURL, READ, { id: order.id }, { bearer: bobTok });
  assert.equal(bobs.data?.order, null, JSON.stringify(bobs));
  const list = await gqlData(s.queryURL, `{ orders(first: 100) { edges { node { id customerId } } } }`, {}, { bearer: bobTok });
  assert.ok(list.orders.edges.every((e) => e.node.id !== order.id), 'bob\'s list holds alice\'s order');
  const history = await gql(s.queryURL, `query($id: ID!) { productHistory(id: $id) { id } }`, { id: 'p' }, { bearer: aliceTok });
  assert.equal(history.errors?.[0]?.extensions?.code, 'FORBIDDEN', JSON.stringify(history));
  const mutation = await gql(s.commandURL, `mutation { createProduct(input: {name: "x", category: "c", priceCents: 1, currency: "EUR", stock: 1}) { id } }`, {}, { bearer: null });
  assert.equal(mutation.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', JSON.stringify(mutation));
  const forged = await gql(s.queryURL, READ, { id: order.id }, { bearer: aliceTok.slice(0, -2) + 'xx' });
  assert.equal(forged.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED', JSON.stringify(forged));
});
