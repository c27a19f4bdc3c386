// Thin adapters over the two third-party subscription clients, so each test
// can say "subscribe, give me the next message". The protocol work is done
// entirely by the libraries:
//   - graphql-ws (createClient), sub-protocol graphql-transport-ws
//   - subscriptions-transport-ws (SubscriptionClient), the legacy graphql-ws sub-protocol
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import pkg from 'subscriptions-transport-ws';
import { Inbox, withTimeout } from './stack.mjs';

const { SubscriptionClient } = pkg;

/**
 * A graphql-ws client (graphql-transport-ws). connectionParams go in
 * connection_init (e.g. {authorization: 'Bearer <jwt>'}).
 */
export async function modernClient(url, { connectionParams } = {}) {
  let closed = null;
  const client = createClient({
    url,
    connectionParams,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    // The server's own keep-alive pings are answered by the library.
    on: {
      closed: (e) => {
        closed = e;
      },
    },
  });
  // Wait for connection_ack so a failing stack shows up as a clear error.
  await withTimeout(
    new Promise((resolve, reject) => {
      const off1 = client.on('connected', () => {
        off1();
        off2();
        resolve();
      });
      const off2 = client.on('closed', (e) => {
        off1();
        off2();
        reject(new Error(`graphql-ws: closed before connection_ack: code ${e?.code} ${e?.reason ?? ''}`));
      });
    }),
    10_000,
    `graphql-ws connection_ack from ${url}`,
  );
  return {
    protocol: 'graphql-transport-ws',
    /** Starts a subscription; messages ({data, errors}) arrive in the returned inbox. */
    subscribe(query, variables = {}, name = 'subscription') {
      const inbox = new Inbox(`graphql-ws ${name}`);
      inbox.unsubscribe = client.subscribe(
        { query, variables },
        {
          next: (v) => inbox.push(v),
          error: (err) => inbox.fail(Array.isArray(err) ? new Error(`graphql-ws error: ${JSON.stringify(err)}`) : err),
          complete: () => inbox.complete(),
        },
      );
      return inbox;
    },
    closedEvent: () => closed,
    close: () => client.dispose(),
  };
}

/** A subscriptions-transport-ws client (the legacy graphql-ws sub-protocol). */
export async function legacyClient(url, { connectionParams } = {}) {
  const client = new SubscriptionClient(url, { reconnect: false, lazy: false, timeout: 30_000, connectionParams }, WebSocket);
  await withTimeout(
    new Promise((resolve, reject) => {
      const off1 = client.onConnected(() => {
        off1();
        off2();
        resolve();
      });
      const off2 = client.onDisconnected(() => {
        off1();
        off2();
        reject(new Error('subscriptions-transport-ws: disconnected before connection_ack'));
      });
    }),
    10_000,
    `subscriptions-transport-ws connection_ack from ${url}`,
  );
  if (client.client?.protocol !== 'graphql-ws') {
    throw new Error(`subscriptions-transport-ws: server chose sub-protocol ${JSON.stringify(client.client?.protocol)}, want "graphql-ws"`);
  }
  return {
    protocol: 'graphql-ws',
    subscribe(query, variables = {}, name = 'subscription') {
      const inbox = new Inbox(`subscriptions-transport-ws ${name}`);
      const sub = client.request({ query, variables }).subscribe({
        next: (v) => inbox.push(v),
        error: (err) => inbox.fail(Array.isArray(err) ? new Error(`legacy error: ${JSON.stringify(err)}`) : err),
        complete: () => inbox.complete(),
      });
      inbox.unsubscribe = () => sub.unsubscribe();
      return inbox;
    },
    close: () => client.close(true, true),
  };
}
