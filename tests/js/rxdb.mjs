// RxDB (the real npm package) replicating with fieldsync over GraphQL + graphql-ws.
//
// rep1's devices: `tablet1` (accounts, contacts, orders) and `tablet2` (contacts), each
// an RxDB database on the memory storage, validated against the collection schemas from
// docs/clients/examples/fieldsync-rxdb.mjs. Scenarios run in order on the same devices.
//
//   node tests/js/rxdb.mjs <config.json>     (see tests/test_js_clients.py)

import { addRxPlugin, createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { replicateGraphQL } from 'rxdb/plugins/replication-graphql';
import { wrappedValidateAjvStorage } from 'rxdb/plugins/validate-ajv';
import { RxDBDevModePlugin, disableWarnings } from 'rxdb/plugins/dev-mode';

import {
  COLLECTIONS, fieldMergeConflictHandler, pullQueryBuilder, pushQueryBuilder,
  serverWinsConflictHandler, streamQueryBuilder,
} from '../../docs/clients/examples/fieldsync-rxdb.mjs';
import {
  Report, countingFetch, expect, expectEqual, loadConfig, node, signIn, sleep, today, uuid,
  waitFor,
} from './lib.mjs';

disableWarnings();
addRxPlugin(RxDBDevModePlugin);

const config = loadConfig();
const report = new Report('rxdb');
const as = await signIn(config, ['rep1', 'rep2', 'rep3', 'manager1']);
const acc = config.accounts;
const seeded = config.ids['contacts:rep1a'];
const foreignAccounts = new Set([acc.rep2a, acc.rep2b, acc.rep3a, acc.rep3b]);

// Counts calls to the conflict handlers (RxDB calls resolve() only for real conflicts).
const resolved = { contacts: 0, orders: 0, accounts: 0 };
function counted(handler, collection) {
  return {
    isEqual: handler.isEqual,
    resolve(input) {
      resolved[collection] += 1;
      return handler.resolve(input);
    },
  };
}

/** An RxError in one line: its code and the first underlying cause. */
function describe(err) {
  const params = err?.parameters ?? {};
  const inner = (params.errors ?? [])[0] ?? params.writeError;
  let cause = inner?.message ?? '';
  const write = inner?.parameters?.writeError ?? params.writeError;
  if (write?.validationErrors) {
    cause = `${write.status} on ${write.documentId}: ${write.validationErrors.map((v) => v.message).join(', ')}`;
  }
  return `${err?.code ?? err?.name ?? 'error'} ${cause}`.trim();
}

/** One app installation: an RxDB database and its replications, one per collection. */
async function openDevice(name, token, collections) {
  const db = await createRxDatabase({
    name,
    storage: wrappedValidateAjvStorage({ storage: getRxStorageMemory() }),
    multiInstance: false,
  });
  await db.addCollections(Object.fromEntries(collections.map((c) => [c, {
    schema: COLLECTIONS[c].schema,
    conflictHandler: counted(c === 'orders' ? serverWinsConflictHandler : fieldMergeConflictHandler, c),
  }])));
  const net = countingFetch();
  const errors = [];
  const replications = {};
  for (const c of collections) {
    const entity = COLLECTIONS[c].entity;
    const replication = replicateGraphQL({
      collection: db[c],
      replicationIdentifier: `fieldsync-${c}-${config.http}`,
      url: { http: config.http, ws: config.ws },
      headers: { Authorization: `Bearer ${token}` },
      fetch: net.fetch,
      push: { queryBuilder: pushQueryBuilder(entity), batchSize: 10 },
      pull: {
        queryBuilder: pullQueryBuilder(entity, name),
        streamQueryBuilder: streamQueryBuilder(entity, name),
        batchSize: 5,
        includeWsHeaders: true, // the token goes into graphql-ws' connection_init
      },
      deletedField: '_deleted',
      live: true,
      retryTime: 500,
      waitForLeadership: false,
      autoStart: false,
    });
    replication.error$.subscribe((err) => errors.push(`${c}: ${describe(err)}`));
    replications[c] = replication;
  }
  return {
    name, db, net, errors, replications,
    async start() {
      await Promise.all(Object.values(replications).map((r) => r.start()));
      await Promise.all(Object.values(replications).map((r) => r.awaitInitialReplication()));
    },
    async inSync() {
      await Promise.all(Object.values(replications).map((r) => r.awaitInSync()));
    },
    async doc(collection, id) {
      const d = await db[collection].findOne(id).exec();
      return d ? d.toJSON() : null;
    },
    async all(collection) {
      return (await db[collection].find().exec()).map((d) => d.toJSON());
    },
  };
}

/** The server's documents for an entity as rep1 sees them, through the same pull contract. */
async function masterDocs(call, entity) {
  const docs = new Map();
  let checkpoint = null;
  for (;;) {
    const q = pullQueryBuilder(entity, 'js-checker')(checkpoint, 100);
    const page = (await call(q.query, q.variables))[`pull${entity}`];
    for (const d of page.documents) docs.set(d.id, d);
    checkpoint = page.checkpoint;
    if (page.documents.length < 100) return docs;
  }
}

function sameDoc(local, master, collection) {
  const fields = Object.keys(COLLECTIONS[collection].schema.properties);
  const diff = fields.filter((f) => JSON.stringify(local?.[f] ?? null) !== JSON.stringify(master?.[f] ?? null));
  return { equal: diff.length === 0, diff: diff.map((f) => [f, local?.[f], master?.[f]]) };
}

const UPDATE_CONTACT = `mutation Edit($id: ID!, $input: ContactInput!) {
  updateContact(id: $id, input: $input) { status errors { code message } } }`;

// -- the devices ------------------------------------------------------------------------------

const tablet1 = await openDevice('tablet1', as.rep1.token, ['accounts', 'contacts', 'orders']);
let tablet2;
const created = [uuid(), uuid(), uuid()];

await report.scenario('offline_creates_pushed', async (facts) => {
  // Written while the app has never been online: nothing replicates yet.
  await tablet1.db.contacts.bulkInsert(created.map((id, i) => ({
    id, accountId: acc.rep1a, firstName: `Offline${i}`, lastName: 'Tablet1', email: null,
  })));
  await tablet1.start();
  await tablet1.inSync();
  for (const [i, id] of created.entries()) {
    const server = await node(as.rep1, id, '... on Contact { firstName lastName accountId }');
    expectEqual(server, { id, firstName: `Offline${i}`, lastName: 'Tablet1', accountId: acc.rep1a },
      `server copy of offline contact ${i}`);
    // and the server's master state (version, timestamps) comes back to the device
    const local = await waitFor(`contact ${i} to get its server version`, async () => {
      const d = await tablet1.doc('contacts', id);
      return d?.version >= 1 && d.createdAt ? d : null;
    });
    expectEqual(local.isPrimary, false, 'server default filled in');
  }
  facts.created = created;
  facts.pushRequests = tablet1.net.count('PushContact');
});

await report.scenario('server_records_pulled_in_pages', async (facts) => {
  const contacts = await tablet1.all('contacts');
  const ids = new Set(contacts.map((d) => d.id));
  const missing = [...seeded, ...config.ids['contacts:rep1b']].filter((id) => !ids.has(id));
  expectEqual(missing, [], 'seeded contacts missing on the device');
  // 14 seeded + 3 pushed contacts, pulled 5 at a time
  const pulls = tablet1.net.count('PullContact');
  expect(pulls >= 4, `expected at least 4 pages of contacts, got ${pulls} pull requests`);
  const accounts = (await tablet1.all('accounts')).map((d) => d.id).sort();
  expectEqual(accounts, [acc.rep1a, acc.rep1b].sort(), "rep1's accounts");
  const master = await masterDocs(as.rep1, 'Contact');
  for (const d of contacts) {
    const cmp = sameDoc(d, master.get(d.id), 'contacts');
    expect(cmp.equal, `contact ${d.id} differs from the server`, cmp.diff);
  }
  facts.contacts = contacts.length;
  facts.pullRequests = pulls;
});

await report.scenario('live_update_through_stream', async (facts) => {
  const target = seeded[0];
  const pullsBefore = tablet1.net.count('PullContact');
  const t0 = Date.now();
  const out = await as.manager1(UPDATE_CONTACT, { id: target, input: { title: 'Head buyer' } });
  expectEqual(out.updateContact.status, 'APPLIED', 'manager edit');
  await waitFor('the manager\'s edit to reach the device', async () => {
    const d = await tablet1.doc('contacts', target);
    return d?.title === 'Head buyer';
  });
  facts.latencyMs = Date.now() - t0;
  expectEqual(tablet1.net.count('PullContact') - pullsBefore, 0,
    'pull requests while waiting (the update must come through the websocket stream)');
  facts.id = target;
});

await report.scenario('conflict_resolved_by_handler', async (facts) => {
  const [other, same] = [seeded[1], seeded[2]];
  const contacts = tablet1.replications.contacts;
  const before = resolved.contacts;
  await contacts.pause(); // offline
  await (await tablet1.db.contacts.findOne(other).exec()).incrementalPatch({ lastName: 'FromTablet' });
  await (await tablet1.db.contacts.findOne(same).exec()).incrementalPatch({ title: 'Buyer (tablet)' });
  // meanwhile the manager edits the same contacts on the server
  for (const [id, input] of [[other, { firstName: 'FromOffice' }],
    [same, { title: 'Buyer (office)', phone: '+32 2 555 01 01' }]]) {
    const out = await as.manager1(UPDATE_CONTACT, { id, input });
    expectEqual(out.updateContact.status, 'APPLIED', 'manager edit');
  }
  await sleep(300); // let the server's stream batch arrive while the device is offline
  await contacts.start(); // back online: push (conflict → handler → push again), pull
  const expected = {
    [other]: { firstName: 'FromOffice', lastName: 'FromTablet' },
    [same]: { title: 'Buyer (tablet)', phone: '+32 2 555 01 01' },
  };
  let last;
  await waitFor('client and server to agree on the merged contacts', async () => {
    await tablet1.inSync();
    const master = await masterDocs(as.rep1, 'Contact');
    last = {};
    for (const id of [other, same]) {
      const local = await tablet1.doc('contacts', id);
      const cmp = sameDoc(local, master.get(id), 'contacts');
      const wanted = Object.entries(expected[id]).every(([k, v]) => master.get(id)?.[k] === v);
      last[id] = { equal: cmp.equal, wanted, diff: cmp.diff };
      if (!cmp.equal || !wanted) return false;
    }
    return true;
  }, { timeout: 15000, interval: 200 }).catch((err) => {
    err.details = last;
    throw err;
  });
  expect(resolved.contacts > before, 'the conflict handler was not called');
  facts.handlerCalls = resolved.contacts - before;
  facts.expected = expected;
});

await report.scenario('refused_change_converges', async (facts) => {
  // A rep may not change a credit limit: the server answers the push with its document.
  // The merge handler must take it (not push the refused value forever).
  const before = tablet1.net.count('PushAccount');
  await (await tablet1.db.accounts.findOne(acc.rep1a).exec()).incrementalPatch({ creditLimitCents: 99999900 });
  await waitFor('the device to take the server\'s credit limit back', async () =>
    (await tablet1.doc('accounts', acc.rep1a))?.creditLimitCents === 100000, { timeout: 5000 });
  await sleep(500); // and to stay quiet afterwards
  await tablet1.inSync();
  const pushes = tablet1.net.count('PushAccount') - before;
  expect(pushes <= 3, `expected at most 3 account pushes, got ${pushes} (a push loop?)`);
  const master = await masterDocs(as.rep1, 'Account');
  const cmp = sameDoc(await tablet1.doc('accounts', acc.rep1a), master.get(acc.rep1a), 'accounts');
  expect(cmp.equal, 'account differs from the server', cmp.diff);
  expectEqual(master.get(acc.rep1a).creditLimitCents, 100000, 'server credit limit');
  facts.pushes = pushes;
  facts.id = acc.rep1a;
});

await report.scenario('delete_reaches_second_device', async (facts) => {
  const victim = seeded[3];
  tablet2 = await openDevice('tablet2', as.rep1.token, ['contacts']);
  await tablet2.start();
  expect(await tablet2.doc('contacts', victim), 'tablet2 has the contact before the delete');
  await (await tablet1.db.contacts.findOne(victim).exec()).remove();
  await waitFor('the delete to reach the server', async () =>
    (await node(as.rep1, victim, '')) === null);
  await waitFor('the delete to reach tablet2', async () =>
    (await tablet2.doc('contacts', victim)) === null, { timeout: 5000 }).catch((err) => {
    err.details = { tablet1Errors: tablet1.errors.slice(0, 3), tablet2Errors: tablet2.errors.slice(0, 3) };
    throw err;
  });
  facts.id = victim;
});

await report.scenario('rejected_order_visible_with_reason', async (facts) => {
  const [big, small] = [uuid(), uuid()];
  await tablet1.db.orders.bulkInsert([
    { id: big, accountId: acc.rep1a, orderDate: today(), status: 'SUBMITTED', currency: 'EUR',
      lines: [{ productId: config.products.cola, quantity: 500 }] }, // 5000.00 > 1000.00
    { id: small, accountId: acc.rep1a, orderDate: today(), status: 'SUBMITTED', currency: 'EUR',
      lines: [{ productId: config.products.chips, quantity: 4 }] }, // 10.00
  ]);
  const rejected = await waitFor('the rejection to reach the order on the device', async () => {
    const d = await tablet1.doc('orders', big);
    return d?.status === 'REJECTED' ? d : null;
  });
  expectEqual(rejected.statusReasonCode, 'CREDIT_LIMIT_EXCEEDED', 'statusReasonCode');
  expect(/credit/i.test(rejected.statusReason ?? ''), `statusReason: ${rejected.statusReason}`);
  expectEqual(rejected.lines.map((l) => [l.productId, l.quantity]), [[config.products.cola, 500]],
    'the rejected order keeps its lines');
  const accepted = await waitFor('the accepted order to be priced on the device', async () => {
    const d = await tablet1.doc('orders', small);
    return d?.number && d.totalCents === 1000 ? d : null;
  });
  expectEqual(accepted.status, 'SUBMITTED', 'accepted order status');
  await tablet1.inSync();
  const master = await masterDocs(as.rep1, 'Order');
  for (const id of [big, small]) {
    const cmp = sameDoc(await tablet1.doc('orders', id), master.get(id), 'orders');
    expect(cmp.equal, `order ${id} differs from the server`, cmp.diff);
  }
  facts.rejected = big;
  facts.accepted = small;
  facts.reason = rejected.statusReason;
});

await report.scenario('never_another_reps_records', async (facts) => {
  // Other reps write while rep1's devices are live...
  const foreign = uuid();
  await as.rep3(`mutation($id: ID!, $a: ID!) { createContact(id: $id, input: {accountId: $a,
    firstName: "Not", lastName: "Yours"}) { status } }`, { id: foreign, a: acc.rep3a });
  await as.rep2(UPDATE_CONTACT, { id: config.ids['contacts:rep2a'][5], input: { title: 'Private' } });
  // ...then something rep1 may see, as a marker that the stream delivered everything before it
  await as.manager1(UPDATE_CONTACT, { id: seeded[4], input: { title: 'Marker' } });
  await waitFor('the marker', async () => (await tablet1.doc('contacts', seeded[4]))?.title === 'Marker');
  const foreignIds = new Set([foreign, ...config.ids['contacts:rep2a'], ...config.ids['contacts:rep2b'],
    ...config.ids['contacts:rep3a'], ...foreignAccounts]);
  const seen = [];
  for (const device of [tablet1, tablet2]) {
    for (const c of Object.keys(device.replications)) {
      for (const d of await device.all(c)) {
        if (foreignIds.has(d.id) || foreignAccounts.has(d.accountId)) seen.push(`${device.name}/${c}/${d.id}`);
      }
    }
  }
  expectEqual(seen, [], 'foreign records on rep1\'s devices');
  facts.foreignContact = foreign;
});

await report.scenario('no_replication_errors', async (facts) => {
  facts.requests = { tablet1: tablet1.net.counts, tablet2: tablet2?.net.counts };
  const errors = {};
  for (const device of [tablet1, tablet2]) {
    for (const e of device?.errors ?? []) errors[`${device.name} ${e}`] = (errors[`${device.name} ${e}`] ?? 0) + 1;
  }
  expectEqual(errors, {}, 'replication error$ emissions (message: count)');
});

for (const device of [tablet1, tablet2]) {
  if (!device) continue;
  await Promise.all(Object.values(device.replications).map((r) => r.cancel()));
  await device.db.close();
}
report.finish();
