// Live subscriptions through real third-party clients: a write on the command
// service arrives as the read model from the index (issue 5).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  stack, createProduct, renameProduct, addReview, productAt, unique, waitForSubscriptions, sleep,
} from './lib/stack.mjs';
import { modernClient, legacyClient } from './lib/clients.mjs';

const s = stack();
const open = [];
before(async () => waitForSubscriptions(s, 0));
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  await waitForSubscriptions(s, 0); // the next test counts from zero
});
after(async () => {
  for (const c of open.splice(0)) await c.close();
});

const PRODUCT_CHANGED = `subscription Changed($id: ID!) {
  productChanged(id: $id) { id name category version reviewCount updatedAt }
}`;

/** The next message's product, failing on GraphQL errors. */
async function nextProduct(inbox, field = 'productChanged') {
  const msg = await inbox.next();
  assert.ok(!msg.errors, `${inbox.name}: errors ${JSON.stringify(msg.errors)}`);
  assert.ok(msg.data?.[field], `${inbox.name}: no data.${field} in ${JSON.stringify(msg)}`);
  return msg.data[field];
}

for (const [label, connect] of [['graphql-ws (graphql-transport-ws)', modernClient], ['subscriptions-transport-ws (legacy graphql-ws)', legacyClient]]) {
  test(`${label}: productChanged delivers the renamed product from the index`, async () => {
    const created = await createProduct(s, { name: unique('Before rename') });
    // Read our own write first, so the creation is not what the subscription sees.
    const visible = await productAt(s, created.id, created.token);
    assert.equal(visible.version, created.version);

    const client = await connect(s.queryWsURL);
    open.push(client);
    const inbox = client.subscribe(PRODUCT_CHANGED, { id: created.id }, 'productChanged');
    await waitForSubscriptions(s, 1);

    const newName = unique('After rename');
    const renamed = await renameProduct(s, created.id, newName);
    assert.ok(renamed.version > created.version, `rename answered version ${renamed.version}`);

    let p = await nextProduct(inbox);
    if (p.version === created.version && p.name === created.input.name) {
      // The creation's notice reached the hub just as we subscribed: a correct,
      // older-than-the-rename message. The next one must be the rename.
      p = await nextProduct(inbox);
    }
    assert.equal(p.id, created.id);
    assert.equal(p.name, newName, 'the message carries the name after the rename');
    assert.equal(p.version, renamed.version, 'the message is the read model at the rename\'s version');
    assert.ok(p.version > created.version, 'version increased');
    assert.equal(p.category, created.input.category);

    // And a second rename arrives too, newer again.
    const newer = unique('Renamed twice');
    const renamed2 = await renameProduct(s, created.id, newer);
    const p2 = await nextProduct(inbox);
    assert.equal(p2.name, newer);
    assert.equal(p2.version, renamed2.version);
  });
}

for (const [label, connect] of [['graphql-ws', modernClient], ['subscriptions-transport-ws', legacyClient]]) {
  test(`${label}: reviewAdded delivers the new review with its product's current name`, async () => {
    const product = await createProduct(s, { name: unique('Reviewed product') });
    await productAt(s, product.id, product.token);

    const client = await connect(s.queryWsURL);
    open.push(client);
    const inbox = client.subscribe(
      `subscription Reviews($pid: ID!) { reviewAdded(productId: $pid) { id productId productName author rating comment createdAt } }`,
      { pid: product.id },
      'reviewAdded',
    );
    await waitForSubscriptions(s, 1);

    const review = await addReview(s, product.id, { author: 'ada', rating: 5, comment: 'Excellent.' });
    const r = await nextProduct(inbox, 'reviewAdded');
    assert.equal(r.id, review.id);
    assert.equal(r.productId, product.id);
    assert.equal(r.productName, product.input.name);
    assert.equal(r.author, 'ada');
    assert.equal(r.rating, 5);
    assert.equal(r.comment, 'Excellent.');

    // productName follows renames: rename, wait until the rename is readable, review again.
    const newName = unique('Renamed reviewed product');
    const renamed = await renameProduct(s, product.id, newName);
    await productAt(s, product.id, renamed.token);
    const review2 = await addReview(s, product.id, { author: 'grace', rating: 3 });
    let r2 = await nextProduct(inbox, 'reviewAdded');
    assert.equal(r2.id, review2.id, `only added reviews arrive (got ${JSON.stringify(r2)})`);
    assert.equal(r2.productName, newName);
  });
}

test('graphql-ws: productsChanged(filter: {category}) delivers matching products only', async () => {
  const wanted = unique('cat-wanted');
  const other = unique('cat-other');
  const a = await createProduct(s, { category: wanted, name: unique('Wanted A') });
  const b = await createProduct(s, { category: other, name: unique('Other B') });
  await productAt(s, a.id, a.token);
  await productAt(s, b.id, b.token);

  const client = await modernClient(s.queryWsURL);
  open.push(client);
  const inbox = client.subscribe(
    `subscription Cat($f: ProductFilter) { productsChanged(filter: $f) { id name category version } }`,
    { f: { category: wanted } },
    'productsChanged',
  );
  await waitForSubscriptions(s, 1);

  // Interleave changes to both categories; end with a new matching product as
  // a sentinel: once it arrives, everything written before it was published.
  await renameProduct(s, b.id, unique('Other B renamed'));
  const aRenamed = await renameProduct(s, a.id, unique('Wanted A renamed'));
  await renameProduct(s, b.id, unique('Other B renamed again'));
  await createProduct(s, { category: other, name: unique('Other C') });
  const sentinel = await createProduct(s, { category: wanted, name: unique('Wanted D') });

  const got = [];
  while (!got.some((p) => p.id === sentinel.id)) {
    got.push(await nextProduct(inbox, 'productsChanged'));
  }
  await sleep(300); // stragglers, if the server leaked any, would show up here
  while (inbox.items.length) got.push(await nextProduct(inbox, 'productsChanged'));

  for (const p of got) assert.equal(p.category, wanted, `a non-matching product arrived: ${JSON.stringify(p)}`);
  const ids = got.map((p) => p.id);
  assert.ok(ids.includes(a.id), `the matching rename arrived (got ${JSON.stringify(got)})`);
  const aMsg = got.find((p) => p.id === a.id && p.version === aRenamed.version);
  assert.ok(aMsg, `product A arrives at the rename's version ${aRenamed.version}: ${JSON.stringify(got)}`);
  assert.deepEqual([...new Set(ids)].sort(), [a.id, sentinel.id].sort());
});
