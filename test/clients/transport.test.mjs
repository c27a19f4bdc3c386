// The WebSocket transport's limits: the connection_init timeout (4408) and
// the cap on subscriptions per connection (issue 5, part 3).
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { stack, waitForSubscriptions, openSubscriptions, sleep, withTimeout } from './lib/stack.mjs';
import { modernClient } from './lib/clients.mjs';

const s = stack();
// The server's connection_init timeout: SPLITSTREAM_WS_INIT_TIMEOUT (make test-clients sets 3s).
const INIT_TIMEOUT_MS = Number(process.env.INIT_TIMEOUT_MS || 10_000);
const MAX_SUBSCRIPTIONS = Number(process.env.MAX_SUBSCRIPTIONS || 100);

const open = [];
after(async () => {
  for (const c of open.splice(0)) await c.close();
});

// The two tests wait on the server in different ways and touch different
// state, so they run side by side: the init timeout's 10 s overlaps the rest.
describe('WebSocket transport', { concurrency: true }, () => {
  test('a graphql-transport-ws connection that sends no connection_init is closed with 4408', async () => {
    const ws = new WebSocket(s.queryWsURL, 'graphql-transport-ws');
    const opened = new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: performance.now() })));
    const messages = [];
    ws.on('message', (m) => messages.push(m.toString()));
    await withTimeout(opened, 10_000, 'the WebSocket handshake');
    assert.equal(ws.protocol, 'graphql-transport-ws', 'the server accepts the sub-protocol');
    const t0 = performance.now();
    const { code, reason, at } = await withTimeout(closed, INIT_TIMEOUT_MS + 5_000, 'the server to close the connection');
    const waited = at - t0;
    assert.equal(code, 4408, `close code ${code} (${reason})`);
    assert.ok(waited > INIT_TIMEOUT_MS * 0.8, `closed after ${waited.toFixed(0)} ms, before the init timeout`);
    assert.deepEqual(messages, [], 'nothing is sent before connection_init');
  });

  test(`subscription ${MAX_SUBSCRIPTIONS + 1} on one connection gets an error; the others keep working`, async () => {
    await waitForSubscriptions(s, 0);
    const client = await modernClient(s.queryWsURL);
    open.push(client);
    const q = `subscription Cap($id: ID!) { productChanged(id: $id) { id } }`;
    const subs = [];
    for (let i = 0; i < MAX_SUBSCRIPTIONS; i++) {
      subs.push(client.subscribe(q, { id: `cap-${i}` }, `sub ${i + 1}`));
    }
    await waitForSubscriptions(s, MAX_SUBSCRIPTIONS);

    const extra = client.subscribe(q, { id: 'cap-extra' }, `sub ${MAX_SUBSCRIPTIONS + 1}`);
    const err = await expectError(extra);
    assert.match(err, /too many subscriptions/i);
    assert.match(err, /BAD_USER_INPUT/);
    await sleep(200);
    assert.equal(await openSubscriptions(s), MAX_SUBSCRIPTIONS, 'the rejected one holds nothing on the server');
    assert.equal(client.closedEvent(), null, 'the connection stays open');

    // Ending one frees a place on the connection.
    subs[0].unsubscribe();
    await waitForSubscriptions(s, MAX_SUBSCRIPTIONS - 1);
    let again;
    for (let attempt = 0; ; attempt++) {
      // The per-connection count drops when the server's operation context
      // ends, just after the hub's gauge; retry briefly if we are early.
      again = client.subscribe(q, { id: 'cap-again' }, 'sub after unsubscribe');
      try {
        await waitForSubscriptions(s, MAX_SUBSCRIPTIONS, 1_000);
        break;
      } catch (e) {
        if (attempt >= 5) throw e;
        again.unsubscribe();
      }
    }
    assert.equal(again.error, null);
  });

});

/** Resolves with the error text of a subscription the server refuses (an error message, or a next with errors). */
async function expectError(inbox) {
  try {
    const msg = await inbox.next(10_000);
    assert.ok(msg.errors?.length, `expected an error, got ${JSON.stringify(msg)}`);
    return JSON.stringify(msg.errors);
  } catch (e) {
    if (/timed out/.test(e.message)) throw e;
    return e.message;
  }
}
