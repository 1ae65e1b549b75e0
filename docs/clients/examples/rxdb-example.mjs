// RxDB replicating with fieldsync: the whole client side is configuration.
//
//   ./scripts/serve                                   # in the repository root
//   cd docs/clients/examples && npm install
//   node rxdb-example.mjs [http://127.0.0.1:8000] [rep1@example.com] [demo-password]
//
// Replicates products, accounts, contacts and orders for the rep, adds a contact on the
// device, then prints changes as they stream in (edit a contact of this rep in the
// explorer at http://127.0.0.1:8000/graphql to see one) for WATCH_SECONDS (default 30).
// In a web or React Native app use a persistent storage (e.g. Dexie / SQLite) instead of
// the memory storage and keep `clientId` stable per installation.

import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { replicateGraphQL } from 'rxdb/plugins/replication-graphql';

import {
  COLLECTIONS, fieldMergeConflictHandler, pullQueryBuilder, pushQueryBuilder,
  serverWinsConflictHandler, streamQueryBuilder,
} from './fieldsync-rxdb.mjs';
import { signIn } from './session.mjs';

const [base = 'http://127.0.0.1:8000', email = 'rep1@example.com', password = 'demo-password'] =
  process.argv.slice(2);
const http = `${base.replace(/\/$/, '')}/graphql`;
const ws = http.replace(/^http/, 'ws');
const watchSeconds = Number(process.env.WATCH_SECONDS ?? 30);
const clientId = `rxdb-example-${email}`; // an app stores a random id once per installation

const session = await signIn(http, email, password);
const db = await createRxDatabase({ name: 'fieldsync-example', storage: getRxStorageMemory() });
const names = ['products', 'accounts', 'contacts', 'orders'];
await db.addCollections(Object.fromEntries(names.map((name) => [name, {
  schema: COLLECTIONS[name].schema,
  conflictHandler: name === 'orders' ? serverWinsConflictHandler : fieldMergeConflictHandler,
}])));

const replications = names.map((name) => {
  const { entity } = COLLECTIONS[name];
  const replication = replicateGraphQL({
    collection: db[name],
    replicationIdentifier: `fieldsync-${name}-${http}`,
    url: { http, ws },
    headers: { Authorization: `Bearer ${session.token}` },
    push: { queryBuilder: pushQueryBuilder(entity), batchSize: 50 },
    pull: {
      queryBuilder: pullQueryBuilder(entity, clientId),
      streamQueryBuilder: streamQueryBuilder(entity, clientId),
      batchSize: 200,
      // graphql-ws reads these on every (re)connect, so a refreshed token is used
      wsOptions: { connectionParams: () => ({ Authorization: `Bearer ${session.token}` }) },
    },
    deletedField: '_deleted',
    live: true,
    retryTime: 5000,
    waitForLeadership: true, // in browsers: one tab replicates for all
  });
  replication.error$.subscribe((err) => console.error(`[${name}]`, err.code ?? '', err.message));
  return replication;
});
session.onRefresh((token) => {
  for (const r of replications) r.setHeaders({ Authorization: `Bearer ${token}` });
});

await Promise.all(replications.map((r) => r.awaitInitialReplication()));
for (const name of names) {
  console.log(`${name}: ${await db[name].count().exec()} on the device`);
}

// Written locally first (works offline), pushed by the replication.
const account = await db.accounts.findOne({ sort: [{ id: 'asc' }] }).exec();
if (account) {
  const contact = await db.contacts.insert({
    id: crypto.randomUUID(), accountId: account.id, firstName: 'Ada', lastName: 'Example',
  });
  await replications[names.indexOf('contacts')].awaitInSync();
  console.log(`created contact ${contact.id} at ${account.name}; pushed`);
  // the server's copy (version, timestamps) comes back through the stream
  const synced = await new Promise((resolve) => {
    const sub = db.contacts.findOne(contact.id).$.subscribe((d) => {
      if (d?.version) { sub.unsubscribe(); resolve(d); }
    });
  });
  console.log(`  server version ${synced.version}, created at ${synced.createdAt}`);
}

for (const name of names) {
  db[name].$.subscribe((ev) => {
    console.log(`live: ${name} ${ev.operation} ${ev.documentId}`);
  });
}
console.log(`watching live changes for ${watchSeconds} s…`);
await new Promise((resolve) => setTimeout(resolve, watchSeconds * 1000));

await Promise.all(replications.map((r) => r.cancel()));
await db.close();
session.stop();
process.exit(0);
