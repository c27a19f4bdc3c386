// Unmodified third-party clients against the gateway alone (issue 15): one
// URL for mutations, consistentWith reads and live subscriptions. Apollo
// Client (HttpLink for a mutation and a query, GraphQLWsLink for a
// subscription), graphql-ws and graphql-sse, each through the gateway's
// /graphql, and the legacy subscriptions-transport-ws.
import { test, before, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ApolloClient, InMemoryCache, HttpLink, gql as tag } from '@apollo/client/core/index.js';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions/index.js';
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';
import { legacyClient } from './lib/clients.mjs';
import { stack, admin, unique, waitForSubscriptions, withTimeout, Inbox } from './lib/stack.mjs';

const s = stack();
const cleanups = [];
before(async () => {
  assert.ok(s.gatewayURL && s.gatewayWsURL, 'GATEWAY_URL and GATEWAY_WS_URL are not set (scripts/teststack writes them)');
  await waitForSubscriptions(s, 0);
});
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  await waitForSubscriptions(s, 0);
});

const CREATE = `mutation Create($input: CreateProductInput!) { createProduct(input: $input) { id version token } }`;
const RENAME = `mutation Rename($input: RenameProductInput!) { renameProduct(input: $input) { id version token } }`;
const READ = `query Read($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id name version } }`;
const WATCH = `subscription Watch($id: ID!) { productChanged(id: $id) { id name version } }`;
const input = () => ({ name: unique('Gateway product'), category: 'gateway-tests', priceCents: 999, currency: 'EUR', stock: 4 });

/** An Apollo Client whose only link is HttpLink to the gateway. */
async function apolloHttp() {
  const bearer = await admin(s);
  return new ApolloClient({
    link: new HttpLink({ uri: `${s.gatewayURL}/graphql`, headers: { authorization: `Bearer ${bearer}` } }),
    cache: new InMemoryCache(),
    defaultOptions: { query: { fetchPolicy: 'no-cache' }, mutate: { fetchPolicy: 'no-cache' } },
  });
}

/** A graphql-ws client on the gateway, the token in connection_init. */
async function wsClient() {
  const client = createWsClient({
    url: s.gatewayWsURL,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${await admin(s)}` },
    retryAttempts: 0,
  });
  cleanups.push(() => client.dispose());
  return client;
}

test('Apollo Client HttpLink: a mutation, then a consistentWith read, both through the gateway', async () => {
  const apollo = await apolloHttp();
  const m = await apollo.mutate({ mutation: tag(CREATE), variables: { input: input() } });
  const created = m.data.createProduct;
  assert.ok(created.id && created.token, `createProduct answered ${JSON.stringify(m.data)}`);
  const q = await apollo.query({ query: tag(READ), variables: { id: created.id, t: created.token } });
  assert.equal(q.data.product.id, created.id);
  assert.equal(q.data.product.version, created.version, 'the read reflects the write at once');
});

test('Apollo Client GraphQLWsLink: a live subscription through the gateway sees a mutation made through it', async () => {
  const apollo = await apolloHttp();
  const created = (await apollo.mutate({ mutation: tag(CREATE), variables: { input: input() } })).data.createProduct;
  await apollo.query({ query: tag(READ), variables: { id: created.id, t: created.token } });
  const live = new ApolloClient({ link: new GraphQLWsLink(await wsClient()), cache: new InMemoryCache() });
  const inbox = new Inbox('Apollo GraphQLWsLink');
  const sub = live.subscribe({ query: tag(WATCH), variables: { id: created.id }, fetchPolicy: 'no-cache' })
    .subscribe({ next: (v) => inbox.push(v), error: (e) => inbox.fail(e), complete: () => inbox.complete() });
  cleanups.push(() => sub.unsubscribe());
  await waitForSubscriptions(s, 1);
  const name = unique('Renamed via Apollo');
  await apollo.mutate({ mutation: tag(RENAME), variables: { input: { id: created.id, name } } });
  const msg = await inbox.next();
  assert.equal(msg.data.productChanged.name, name);
});

/** Runs one operation on a graphql-ws client; resolves with its only result. */
function once(client, query, variables) {
  return withTimeout(new Promise((resolve, reject) => {
    let result;
    client.subscribe({ query, variables }, { next: (v) => { result = v; }, error: reject, complete: () => resolve(result) });
  }), 15_000, `graphql-ws ${query.split('(')[0]}`);
}

test('graphql-ws: mutation, consistentWith read and subscription, all over the gateway\'s WebSocket', async () => {
  const client = await wsClient();
  const created = (await once(client, CREATE, { input: input() })).data.createProduct;
  const read = await once(client, READ, { id: created.id, t: created.token });
  assert.equal(read.data.product.version, created.version);
  const inbox = new Inbox('graphql-ws');
  cleanups.push(client.subscribe({ query: WATCH, variables: { id: created.id } },
    { next: (v) => inbox.push(v), error: (e) => inbox.fail(e), complete: () => inbox.complete() }));
  await waitForSubscriptions(s, 1);
  const name = unique('Renamed via graphql-ws');
  const renamed = (await once(client, RENAME, { input: { id: created.id, name } })).data.renameProduct;
  const msg = await inbox.next();
  assert.equal(msg.data.productChanged.name, name);
  assert.equal(msg.data.productChanged.version, renamed.version);
});

test('graphql-sse: a subscription over server-sent events through the gateway', async () => {
  const bearer = await admin(s);
  const client = createSseClient({ url: `${s.gatewayURL}/graphql`, headers: { authorization: `Bearer ${bearer}` }, retryAttempts: 0 });
  cleanups.push(() => client.dispose());
  const apollo = await apolloHttp();
  const created = (await apollo.mutate({ mutation: tag(CREATE), variables: { input: input() } })).data.createProduct;
  await apollo.query({ query: tag(READ), variables: { id: created.id, t: created.token } });
  const inbox = new Inbox('graphql-sse');
  cleanups.push(client.subscribe({ query: WATCH, variables: { id: created.id } },
    { next: (v) => inbox.push(v), error: (e) => inbox.fail(e), complete: () => inbox.complete() }));
  await waitForSubscriptions(s, 1);
  const name = unique('Renamed via graphql-sse');
  await apollo.mutate({ mutation: tag(RENAME), variables: { input: { id: created.id, name } } });
  const msg = await inbox.next();
  assert.equal(msg.data.productChanged.name, name);
});

test('subscriptions-transport-ws (the legacy graphql-ws sub-protocol) through the gateway', async () => {
  const apollo = await apolloHttp();
  const created = (await apollo.mutate({ mutation: tag(CREATE), variables: { input: input() } })).data.createProduct;
  await apollo.query({ query: tag(READ), variables: { id: created.id, t: created.token } });
  const client = await legacyClient(s.gatewayWsURL, { connectionParams: { authorization: `Bearer ${await admin(s)}` } });
  cleanups.push(() => client.close());
  const inbox = client.subscribe(WATCH, { id: created.id }, 'productChanged');
  await waitForSubscriptions(s, 1);
  const name = unique('Renamed via the legacy protocol');
  await apollo.mutate({ mutation: tag(RENAME), variables: { input: { id: created.id, name } } });
  const msg = await inbox.next();
  assert.equal(msg.data.productChanged.name, name);
});

test('the gateway refuses a document that mixes a mutation with a query', async () => {
  const res = await fetch(`${s.gatewayURL}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${await admin(s)}` },
    body: JSON.stringify({ query: `${CREATE}\n${READ}`, operationName: 'Read', variables: { id: 'x' } }),
  });
  const body = await res.json();
  assert.equal(body.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED', JSON.stringify(body));
});
