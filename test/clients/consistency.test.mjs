// Read-your-writes over plain HTTP: a mutation's token passed as
// consistentWith makes the query reflect that mutation (issue 5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stack, gql, createProduct, addReview, unique, readToken } from './lib/stack.mjs';

const s = stack();
const LOOPS = Number(process.env.CONSISTENCY_LOOPS || 200);

const READ = `query Count($id: ID!, $t: String) {
  product(id: $id, consistentWith: $t) { id reviewCount averageRating version }
}`;

test(`${LOOPS} x addReview then product(consistentWith: token) sees the new reviewCount every time`, async (t) => {
  const product = await createProduct(s, { name: unique('Read-your-writes') });
  const waits = [];
  const misses = [];
  let ratingSum = 0;
  for (let i = 1; i <= LOOPS; i++) {
    const rating = (i % 5) + 1;
    ratingSum += rating;
    const review = await addReview(s, product.id, { rating, author: `loop-${i}` });
    const t0 = performance.now();
    const body = await gql(s.queryURL, READ, { id: product.id, t: review.token });
    waits.push(performance.now() - t0);
    if (body.errors?.length || body.data?.product?.reviewCount !== i) {
      misses.push({ i, token: review.token, answer: body });
      continue;
    }
    // The review changes its product's rating too: an effect on another document.
    // (The read model rounds averageRating to two decimals.)
    assert.ok(Math.abs(body.data.product.averageRating - ratingSum / i) <= 0.005 + 1e-9,
      `iteration ${i}: averageRating ${body.data.product.averageRating}, want ${ratingSum / i}`);
  }
  waits.sort((a, b) => a - b);
  const q = (f) => waits[Math.min(waits.length - 1, Math.floor(f * waits.length))].toFixed(1);
  t.diagnostic(`read after write: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms`);
  assert.deepEqual(misses.slice(0, 5), [], `${misses.length} of ${LOOPS} reads missed their write (first 5 shown)`);
});

test('consistentWith: a malformed token is BAD_USER_INPUT', async () => {
  const product = await createProduct(s);
  // The unsigned v1 form (base64url of "v1:<tx>:<position>") and a signed one
  // with a flipped bit are refused like garbage: tokens are signed (issue 12).
  const v1 = Buffer.from('v1:1:1').toString('base64url');
  const good = Buffer.from(readToken(s, 1, 1), 'base64url');
  good[20] ^= 1;
  for (const bad of ['not-a-token', '!!!', 'djE6eHl6OjE' /* "v1:xyz:1" */, v1, good.toString('base64url'), '']) {
    const body = await gql(s.queryURL, READ, { id: product.id, t: bad });
    if (bad === '') {
      // An empty token is as good as none, or rejected; it never fails any other way.
      if (!body.errors) continue;
    }
    assert.ok(body.errors?.length, `token ${JSON.stringify(bad)}: expected an error, got ${JSON.stringify(body)}`);
    assert.equal(body.errors[0].extensions?.code, 'BAD_USER_INPUT', `token ${JSON.stringify(bad)}: ${JSON.stringify(body.errors)}`);
    assert.equal(body.data?.product ?? null, null);
  }
  // The same for the list query.
  const body = await gql(s.queryURL, `query($t: String) { products(first: 1, consistentWith: $t) { totalCount } }`, { t: 'garbage' });
  assert.equal(body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(body));
});

test('consistentWith: a token ahead of everything written is STALE_READ after the bounded wait', async (t) => {
  // Tokens are opaque to clients; this one is signed with the stack's token
  // secret (as only the command service could) far beyond any write, so the
  // read side can never catch up with it: lane 0, then the whole log.
  for (const lane of [0, 255]) {
    const ahead = readToken(s, 999999999999, 9999999999, lane);
    const t0 = performance.now();
    const body = await gql(s.queryURL, READ, { id: 'no-such-product', t: ahead });
    const waited = performance.now() - t0;
    assert.equal(body.errors?.[0]?.extensions?.code, 'STALE_READ', `lane ${lane}: ${JSON.stringify(body)}`);
    assert.ok(waited >= 1_000, `lane ${lane}: failed after ${waited.toFixed(0)} ms, without waiting`);
    t.diagnostic(`lane ${lane}: STALE_READ after ${waited.toFixed(0)} ms`);
  }
});
