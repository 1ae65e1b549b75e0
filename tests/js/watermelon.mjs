// WatermelonDB (the real npm package) syncing with fieldsync through synchronize().
//
// rep2's devices: `phone` and `tablet` (the full app schema, LokiJS in memory), and
// `oldphone`, which starts on schema version 1 (no products table, no accounts.tier)
// and is upgraded to version 2 with migrations. Tables and the pull/push functions come
// from docs/clients/examples/fieldsync-watermelon.mjs.
//
//   node tests/js/watermelon.mjs <config.json>     (see tests/test_js_clients.py)

import { Database, Model, appSchema, tableSchema } from '@nozbe/watermelondb';
import LokiJSAdapterModule from '@nozbe/watermelondb/adapters/lokijs/index.js';
import { synchronize } from '@nozbe/watermelondb/sync/index.js';
import {
  addColumns, createTable, schemaMigrations,
} from '@nozbe/watermelondb/Schema/migrations/index.js';
import { setGenerator } from '@nozbe/watermelondb/utils/common/randomId/index.js';
import Loki from 'lokijs';

import { TABLES, fieldsyncSync } from '../../docs/clients/examples/fieldsync-watermelon.mjs';
import {
  Report, captureConsole, expect, expectEqual, loadConfig, node, signIn, today, uuid,
} from './lib.mjs';

const LokiJSAdapter = LokiJSAdapterModule.default;
const logged = captureConsole();
// The server's ids are UUIDs: so are the ones a device makes.
setGenerator(() => uuid());

const config = loadConfig();
const report = new Report('watermelon');
const as = await signIn(config, ['rep2', 'manager1', 'rep1', 'rep3']);
const acc = config.accounts;
const seeded = config.ids['contacts:rep2a'];

// -- app schema -------------------------------------------------------------------------------

const tables = (version, { without = [], withoutColumns = {} } = {}) => appSchema({
  version,
  tables: Object.entries(TABLES).filter(([name]) => !without.includes(name)).map(([name, columns]) =>
    tableSchema({ name, columns: columns.filter((c) => !(withoutColumns[name] ?? []).includes(c.name)) })),
});
const SCHEMA = tables(2);
const SCHEMA_V1 = tables(1, { without: ['products'], withoutColumns: { accounts: ['tier'] } });
const MIGRATIONS = schemaMigrations({
  migrations: [{
    toVersion: 2,
    steps: [
      createTable({ name: 'products', columns: TABLES.products }),
      addColumns({ table: 'accounts', columns: TABLES.accounts.filter((c) => c.name === 'tier') }),
    ],
  }],
});
const modelClasses = Object.keys(TABLES).map((table) => {
  const cls = class extends Model {};
  cls.table = table;
  return cls;
});

/** One installation of the app for `user`. */
function openDevice(name, user, { schema = SCHEMA, migrations = MIGRATIONS, loki } = {}) {
  const adapter = new LokiJSAdapter({
    schema, migrations, dbName: name,
    useWebWorker: false, useIncrementalIndexedDB: true, // (Node has no IndexedDB: Loki keeps it in memory)
    extraLokiOptions: { autosave: false, verbose: false },
    ...(loki ? { _testLokiAdapter: loki } : {}),
  });
  const database = new Database({ adapter, modelClasses: modelClasses.filter((m) => m.table in schema.tables) });
  const pushes = [];
  const requests = { pull: 0, push: 0 };
  let afterPull = null;
  const remote = fieldsyncSync({
    url: config.http, getToken: () => as[user].token, clientId: name,
    onPushed: (result) => pushes.push(result),
  });
  const device = {
    name, database, pushes, requests,
    /** One `synchronize()`; `hooks.afterPull` runs between the pull and the push. */
    async sync({ afterPullHook } = {}) {
      afterPull = afterPullHook ?? null;
      const log = {};
      await synchronize({
        database,
        pullChanges: async (args) => {
          requests.pull += 1;
          const out = await remote.pullChanges(args);
          if (afterPull) await afterPull();
          return out;
        },
        pushChanges: async (args) => {
          requests.push += 1;
          return remote.pushChanges(args);
        },
        migrationsEnabledAtVersion: 1,
        log,
      });
      return log;
    },
    async raw(table, id) {
      try {
        return { ...(await database.get(table).find(id))._raw };
      } catch {
        return null;
      }
    },
    async all(table) {
      return (await database.get(table).query().fetch()).map((r) => ({ ...r._raw }));
    },
    async create(table, values) {
      let id;
      await database.write(async () => {
        const record = await database.get(table).create((r) => {
          for (const [k, v] of Object.entries(values)) r._setRaw(k, v);
        });
        id = record.id;
      });
      return id;
    },
    async update(table, id, values) {
      await database.write(async () => {
        const record = await database.get(table).find(id);
        await record.update((r) => {
          for (const [k, v] of Object.entries(values)) r._setRaw(k, v);
        });
      });
    },
    async remove(table, id) {
      await database.write(async () => {
        await (await database.get(table).find(id)).markAsDeleted();
      });
    },
  };
  return device;
}

/** What the server holds, in WatermelonDB's shape: a fresh full pull as rep2 would get. */
async function serverRecords(user) {
  const data = await as[user](`query { watermelonPull(clientId: "js-checker") }`);
  const out = {};
  for (const [table, kinds] of Object.entries(data.watermelonPull.changes)) {
    out[table] = new Map(kinds.created.map((r) => [r.id, r]));
  }
  return out;
}

function sameRecord(local, server, table) {
  const columns = TABLES[table].map((c) => c.name);
  const diff = columns.filter((c) => JSON.stringify(local?.[c] ?? null) !== JSON.stringify(server?.[c] ?? null));
  return { equal: diff.length === 0, diff: diff.map((c) => [c, local?.[c], server?.[c]]) };
}

const syncErrors = () => logged.error.filter((m) => m.startsWith('[Sync]') || m.startsWith('[🍉]'));

const UPDATE_CONTACT = `mutation Edit($id: ID!, $input: ContactInput!) {
  updateContact(id: $id, input: $input) { status } }`;

// -- scenarios ----------------------------------------------------------------------------------

const phone = openDevice('phone', 'rep2');
const tablet = openDevice('tablet', 'rep2');

await report.scenario('server_records_pulled', async (facts) => {
  const log = await phone.sync();
  const contacts = await phone.all('contacts');
  const ids = new Set(contacts.map((r) => r.id));
  const missing = [...seeded, ...config.ids['contacts:rep2b']].filter((id) => !ids.has(id));
  expectEqual(missing, [], 'seeded contacts missing on the phone');
  expectEqual((await phone.all('accounts')).map((r) => r.id).sort(), [acc.rep2a, acc.rep2b].sort(),
    "rep2's accounts");
  const products = (await phone.all('products')).map((r) => r.id).sort();
  expectEqual(products, [config.products.cola, config.products.chips].sort(), 'active products');
  const server = await serverRecords('rep2');
  for (const r of contacts) {
    const cmp = sameRecord(r, server.contacts.get(r.id), 'contacts');
    expect(cmp.equal, `contact ${r.id} differs from the server`, cmp.diff);
    expectEqual(r._status, 'synced', 'pulled records are synced');
  }
  facts.contacts = contacts.length;
  facts.lastPulledAt = log.newLastPulledAt;
});

await report.scenario('server_created_record_arrives_as_created', async (facts) => {
  // A record created on the server after the phone's first sync comes with the next one...
  const fresh = uuid();
  const out = await as.manager1(`mutation($id: ID!, $a: ID!) { createContact(id: $id, input: {
    accountId: $a, firstName: "New", lastName: "FromOffice"}) { status } }`, { id: fresh, a: acc.rep2a });
  expectEqual(out.createContact.status, 'APPLIED', 'office create');
  const errorsBefore = syncErrors().length;
  await phone.sync();
  const arrived = await phone.raw('contacts', fresh);
  expectEqual([arrived?.first_name, arrived?._status], ['New', 'synced'], 'server-created contact on the phone');
  // ...as `created` (WatermelonDB logs "[Sync] Server wants client to update record …
  // but it doesn't exist locally" otherwise, unless the app sets sendCreatedAsUpdated)
  expectEqual(syncErrors().slice(errorsBefore), [], 'errors WatermelonDB logged for the incremental pull');
  facts.serverCreated = fresh;
});

await report.scenario('never_another_reps_records', async (facts) => {
  const foreign = new Set([...config.ids['contacts:rep1a'], ...config.ids['contacts:rep1b'],
    ...config.ids['contacts:rep3a'], acc.rep1a, acc.rep1b, acc.rep3a, acc.rep3b]);
  const foreignAccounts = new Set([acc.rep1a, acc.rep1b, acc.rep3a, acc.rep3b]);
  // others write after the phone's first sync
  const other = uuid();
  await as.rep3(`mutation($id: ID!, $a: ID!) { createContact(id: $id, input: {accountId: $a,
    firstName: "Not", lastName: "Yours"}) { status } }`, { id: other, a: acc.rep3a });
  await as.rep1(UPDATE_CONTACT, { id: config.ids['contacts:rep1a'][5], input: { notes: 'private' } });
  foreign.add(other);
  await phone.sync();
  const seen = [];
  for (const table of Object.keys(TABLES)) {
    for (const r of await phone.all(table)) {
      if (foreign.has(r.id) || foreignAccounts.has(r.account_id)) seen.push(`${table}/${r.id}`);
    }
  }
  expectEqual(seen, [], "other reps' records on rep2's phone");
  facts.foreignContact = other;
});

await report.scenario('offline_creates_pushed', async (facts) => {
  const created = [];
  for (let i = 0; i < 2; i += 1) {
    created.push(await phone.create('contacts', {
      account_id: acc.rep2a, first_name: `Offline${i}`, last_name: 'Phone', is_primary: false,
    }));
  }
  expectEqual((await phone.raw('contacts', created[0]))._status, 'created', 'local status before sync');
  await phone.sync();
  const pushed = phone.pushes.at(-1);
  expectEqual(pushed?.rejected, [], 'rejected records');
  for (const [i, id] of created.entries()) {
    const server = await node(as.rep2, id, '... on Contact { firstName lastName accountId version }');
    expectEqual(server, { id, firstName: `Offline${i}`, lastName: 'Phone', accountId: acc.rep2a, version: 1 },
      `server copy of offline contact ${i}`);
    expectEqual((await phone.raw('contacts', id))._status, 'synced', 'local status after sync');
  }
  // the next sync brings the server's version of them back
  await phone.sync();
  for (const id of created) {
    expectEqual((await phone.raw('contacts', id)).version, 1, 'server version on the device');
  }
  facts.created = created;
});

await report.scenario('per_column_merge', async (facts) => {
  // (a) the office edits one column, the phone another, then the phone syncs
  const [a, b] = [seeded[0], seeded[1]];
  await phone.update('contacts', a, { title: 'Buyer (phone)' });
  let out = await as.manager1(UPDATE_CONTACT, { id: a, input: { phone: '+32 9 000 00 01' } });
  expectEqual(out.updateContact.status, 'APPLIED', 'office edit');
  await phone.sync();
  // (b) the office edit lands between the phone's pull and its push: the server merges
  await phone.update('contacts', b, { email: 'buyer@phone.example' });
  await phone.sync({
    afterPullHook: async () => {
      out = await as.manager1(UPDATE_CONTACT, { id: b, input: { phone: '+32 9 000 00 02' } });
      expectEqual(out.updateContact.status, 'APPLIED', 'office edit during the sync');
    },
  });
  expectEqual(phone.pushes.at(-1)?.rejected, [], 'rejected records');
  await phone.sync();
  const expected = {
    [a]: { title: 'Buyer (phone)', phone: '+32 9 000 00 01' },
    [b]: { email: 'buyer@phone.example', phone: '+32 9 000 00 02' },
  };
  const server = await serverRecords('rep2');
  for (const [id, want] of Object.entries(expected)) {
    const local = await phone.raw('contacts', id);
    const master = server.contacts.get(id);
    for (const [column, value] of Object.entries(want)) {
      expectEqual(master?.[column], value, `server ${column} of ${id}`);
    }
    const cmp = sameRecord(local, master, 'contacts');
    expect(cmp.equal, `contact ${id} differs between the phone and the server`, cmp.diff);
    expectEqual(local._status, 'synced', 'merged record is synced');
  }
  facts.expected = expected;
});

await report.scenario('refused_change_converges', async (facts) => {
  // A rep may not change a credit limit. The push is not an error (nothing to retry),
  // so WatermelonDB marks the record synced: the server's value must come back with the
  // next pull, or the phone shows a limit the server never accepted.
  await phone.update('accounts', acc.rep2a, { credit_limit_cents: 99999900 });
  await phone.sync();
  facts.pushAnswer = phone.pushes.at(-1);
  await phone.sync();
  const local = await phone.raw('accounts', acc.rep2a);
  const server = (await serverRecords('rep2')).accounts.get(acc.rep2a);
  expectEqual(server?.credit_limit_cents, 100000, 'server credit limit');
  const cmp = sameRecord(local, server, 'accounts');
  expect(cmp.equal, 'the phone keeps a value the server refused', cmp.diff);
  facts.id = acc.rep2a;
});

await report.scenario('refused_delete_comes_back', async (facts) => {
  // Only managers delete accounts. WatermelonDB destroys a pushed delete for good, so the
  // account must come back with the next pull (as a record new to the phone).
  const errorsBefore = syncErrors().length;
  await phone.remove('accounts', acc.rep2b);
  await phone.sync();
  const [refusal] = phone.pushes.at(-1).rejected;
  expectEqual([refusal?.table, refusal?.id], ['accounts', acc.rep2b], 'the push answer names the refused delete');
  facts.code = refusal?.code;
  await phone.sync();
  const local = await phone.raw('accounts', acc.rep2b);
  const server = (await serverRecords('rep2')).accounts.get(acc.rep2b);
  expect(server, 'the account is still on the server');
  expect(local, 'the phone lost an account the server kept');
  const cmp = sameRecord(local, server, 'accounts');
  expect(cmp.equal, 'the account differs between the phone and the server', cmp.diff);
  expectEqual(syncErrors().slice(errorsBefore), [], 'errors WatermelonDB logged');
  facts.id = acc.rep2b;
});

await report.scenario('delete_reaches_second_device', async (facts) => {
  const victim = seeded[2];
  await tablet.sync();
  expect(await tablet.raw('contacts', victim), 'the tablet has the contact before the delete');
  await phone.remove('contacts', victim);
  await phone.sync();
  expectEqual(await node(as.rep2, victim, ''), null, 'server copy after the delete');
  await tablet.sync();
  expectEqual(await tablet.raw('contacts', victim), null, 'tablet copy after the delete');
  expectEqual(await phone.raw('contacts', victim), null, 'phone copy after the delete');
  facts.id = victim;
});

await report.scenario('rejected_order_visible_with_reason', async (facts) => {
  const lines = (productId, quantity) => JSON.stringify([{ productId, quantity }]);
  const big = await phone.create('orders', {
    account_id: acc.rep2a, order_date: today(), status: 'SUBMITTED', currency: 'EUR',
    lines: lines(config.products.cola, 500), // 5000.00 over a 1000.00 credit line
  });
  const small = await phone.create('orders', {
    account_id: acc.rep2a, order_date: today(), status: 'SUBMITTED', currency: 'EUR',
    lines: lines(config.products.chips, 4), // 10.00
  });
  await phone.sync();
  const [refusal] = phone.pushes.at(-1).rejected;
  expectEqual([refusal?.table, refusal?.id, refusal?.code], ['orders', big, 'CREDIT_LIMIT_EXCEEDED'],
    'the push answer names the refused order');
  await phone.sync(); // the server's verdict arrives with the next pull
  const order = await phone.raw('orders', big);
  expectEqual([order.status, order.status_reason_code, order._status],
    ['REJECTED', 'CREDIT_LIMIT_EXCEEDED', 'synced'], 'rejected order on the phone');
  expect(/credit/i.test(order.status_reason ?? ''), `status_reason: ${order.status_reason}`);
  expectEqual(JSON.parse(order.lines).map((l) => [l.productId, l.quantity]), [[config.products.cola, 500]],
    'the rejected order keeps its lines');
  const accepted = await phone.raw('orders', small);
  expectEqual([accepted.status, accepted.total_cents, Boolean(accepted.number)], ['SUBMITTED', 1000, true],
    'accepted order priced by the server');
  facts.rejected = big;
  facts.accepted = small;
  facts.reason = order.status_reason;
});

await report.scenario('migration_sync_backfills', async (facts) => {
  const store = new Loki.LokiMemoryAdapter();
  const v1 = openDevice('oldphone', 'rep2', {
    schema: SCHEMA_V1, migrations: schemaMigrations({ migrations: [] }), loki: store,
  });
  await v1.sync();
  expectEqual((await v1.all('accounts')).length, 2, 'accounts on version 1');
  expect(!('tier' in (await v1.all('accounts'))[0]), 'version 1 has no accounts.tier');
  // the app is upgraded: same storage, schema version 2 with migrations
  await v1.database.adapter.unsafeExecute({
    loki: (loki) => loki.saveDatabase(() => {}),
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  const v2 = openDevice('oldphone', 'rep2', { schema: SCHEMA, migrations: MIGRATIONS, loki: store });
  expectEqual((await v2.all('accounts')).length, 2, 'accounts kept by the upgrade');
  expectEqual((await v2.all('products')).length, 0, 'new table empty before the migration sync');
  const log = await v2.sync();
  expectEqual(log.migration?.tables, ['products'], 'migration sync: new tables');
  const products = (await v2.all('products')).map((r) => r.id).sort();
  expectEqual(products, [config.products.cola, config.products.chips].sort(), 'products back-filled');
  const server = await serverRecords('rep2');
  for (const r of await v2.all('accounts')) {
    expect(r.tier, `accounts.tier back-filled for ${r.id}`);
    expectEqual(r.tier, server.accounts.get(r.id)?.tier, 'tier as on the server');
  }
  facts.migration = log.migration;
});

await report.scenario('no_sync_errors_logged', async (facts) => {
  facts.requests = { phone: phone.requests, tablet: tablet.requests };
  facts.warnings = logged.warn.filter((m) => m.startsWith('[🍉]'));
  expectEqual(syncErrors(), [], 'errors WatermelonDB logged while syncing');
});

report.finish();
