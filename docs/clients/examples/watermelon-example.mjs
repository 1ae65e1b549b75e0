// WatermelonDB synchronize() with fieldsync: the whole client side is configuration.
//
//   ./scripts/serve                                   # in the repository root
//   cd docs/clients/examples && npm install
//   node watermelon-example.mjs [http://127.0.0.1:8000] [rep1@example.com] [demo-password]
//
// Syncs the rep's data, adds a contact and a small order on the device, syncs again
// (push, then the server's verdict on the order arrives with the next pull).
// In React Native use the SQLiteAdapter instead of LokiJS; the rest is the same.

import { Database, Model, appSchema, tableSchema } from '@nozbe/watermelondb';
import LokiJSAdapterModule from '@nozbe/watermelondb/adapters/lokijs/index.js';
import { schemaMigrations } from '@nozbe/watermelondb/Schema/migrations/index.js';
import { synchronize } from '@nozbe/watermelondb/sync/index.js';
import { setGenerator } from '@nozbe/watermelondb/utils/common/randomId/index.js';

import { TABLES, fieldsyncSync } from './fieldsync-watermelon.mjs';
import { signIn } from './session.mjs';

const LokiJSAdapter = LokiJSAdapterModule.default;
const [base = 'http://127.0.0.1:8000', email = 'rep1@example.com', password = 'demo-password'] =
  process.argv.slice(2);
const url = `${base.replace(/\/$/, '')}/graphql`;

// fieldsync ids are UUIDs: let WatermelonDB make UUIDs too.
setGenerator(() => crypto.randomUUID());

const schema = appSchema({
  version: 1,
  tables: Object.entries(TABLES).map(([name, columns]) => tableSchema({ name, columns })),
});
// Plain models (an app would add @field / @relation decorators).
const modelClasses = Object.keys(TABLES).map((table) => {
  const cls = class extends Model {};
  cls.table = table;
  return cls;
});
const database = new Database({
  adapter: new LokiJSAdapter({
    schema,
    // Migration syncs (migrationsEnabledAtVersion below) need migrations, even none yet.
    migrations: schemaMigrations({ migrations: [] }),
    useWebWorker: false, useIncrementalIndexedDB: true,
    extraLokiOptions: { autosave: false },
  }),
  modelClasses,
});

const session = await signIn(url, email, password);
const remote = fieldsyncSync({
  url,
  getToken: () => session.token,
  clientId: `watermelon-example-${email}`, // an app stores a random id once per installation
  onPushed: ({ applied, rejected }) => {
    console.log(`pushed: ${applied} applied`);
    for (const r of rejected) console.log(`  refused ${r.table}/${r.id}: ${r.code} ${r.message}`);
  },
});

async function sync() {
  const log = {};
  await synchronize({
    database,
    pullChanges: remote.pullChanges,
    pushChanges: remote.pushChanges,
    migrationsEnabledAtVersion: 1,
    log,
  });
  return log;
}

const first = await sync();
console.log(`first sync: ${first.remoteChangeCount} records`);
for (const table of ['products', 'accounts', 'contacts', 'orders']) {
  console.log(`  ${table}: ${await database.get(table).query().fetchCount()}`);
}

const [account] = await database.get('accounts').query().fetch();
const [product] = await database.get('products').query().fetch();
let orderId;
if (account && product) {
  await database.write(async () => {
    await database.get('contacts').create((c) => {
      c._setRaw('account_id', account.id);
      c._setRaw('first_name', 'Ada');
      c._setRaw('last_name', 'Example');
    });
    const order = await database.get('orders').create((o) => {
      o._setRaw('account_id', account.id);
      o._setRaw('order_date', new Date().toISOString().slice(0, 10));
      o._setRaw('status', 'SUBMITTED');
      o._setRaw('currency', 'EUR');
      o._setRaw('lines', JSON.stringify([{ productId: product.id, quantity: 1 }]));
    });
    orderId = order.id;
  });
  await sync(); // pushes the contact and the order
  await sync(); // pulls the server's view of them (order number, prices, or a rejection)
  const order = (await database.get('orders').find(orderId))._raw;
  console.log(`order ${order.number ?? orderId}: ${order.status} ${order.total_cents / 100} ${order.currency}` +
    (order.status_reason ? ` (${order.status_reason})` : ''));
}

session.stop();
process.exit(0);
