// GraphQL over HTTP compliance (issue 15, item 5): the graphql-http package's
// own audit suite (auditServer) against every endpoint in ENDPOINTS. Any
// error ("MUST") or warning ("SHOULD") fails the test and is listed; notices
// ("MAY") are reported as diagnostics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auditServer } from 'graphql-http';
import { stack, admin } from './lib/stack.mjs';

const s = stack();

// Every endpoint that must pass the audit. Add an endpoint here (the gateway's
// /graphql) and it is audited like the others.
const ENDPOINTS = [
  { name: 'command service', url: `${s.commandURL}/graphql` },
  { name: 'query service', url: `${s.queryURL}/graphql` },
  { name: 'gateway', url: `${s.gatewayURL}/graphql` },
];
assert.ok(s.gatewayURL, 'the test stack names its gateway (GATEWAY_URL)');

// The audit's requests go as an admin, as every other helper's do: the stack
// under make test-clients rate-limits other callers to 10 requests a second,
// and a 429 is not what the audit is about.
async function adminFetch(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${await admin(s)}`);
  return fetch(input, { ...init, headers, signal: AbortSignal.timeout(30_000) });
}

for (const { name, url } of ENDPOINTS) {
  test(`graphql-http auditServer: ${name} (${url}) has no errors and no warnings`, async (t) => {
    const results = await auditServer({ url, fetchFn: adminFetch });
    const failed = [];
    for (const r of results) {
      if (r.status === 'ok') continue;
      let detail = r.reason;
      if (r.response) {
        try {
          const body = await r.response.text();
          detail += ` (HTTP ${r.response.status} ${r.response.headers.get('content-type')}: ${body.slice(0, 300)})`;
        } catch {
          // the audit may have read the body already; the reason says enough
        }
      }
      const line = `${r.status}: ${r.id} ${r.name}: ${detail}`;
      if (r.status === 'notice') t.diagnostic(line);
      else failed.push(line);
    }
    const ok = results.filter((r) => r.status === 'ok').length;
    assert.ok(results.length > 0, 'the audit ran no checks');
    assert.deepEqual(failed, [], `${name}: ${ok} ok, ${failed.length} not:\n${failed.join('\n')}`);
  });
}
