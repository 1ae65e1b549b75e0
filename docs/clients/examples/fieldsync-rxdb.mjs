// fieldsync for RxDB: collection schemas, GraphQL query builders and a conflict handler.
//
// Plain data and functions, no imports: copy this file into a web or React Native app
// (or import it) and hand its pieces to RxDB's own `replicateGraphQL`. See
// docs/clients/rxdb.md. The tests (tests/js/rxdb.mjs) import this very file.

// -- field types (JSON schema) ------------------------------------------------------------

const id = { type: 'string', maxLength: 36 };          // lowercase UUID (crypto.randomUUID())
const nid = { type: ['string', 'null'], maxLength: 36 };
const str = { type: 'string' };
const nstr = { type: ['string', 'null'] };
const int = { type: 'integer' };
const nint = { type: ['integer', 'null'] };
const num = { type: ['number', 'null'] };
const bool = { type: 'boolean' };
const date = { type: 'string' };                        // 'YYYY-MM-DD'
const ndate = { type: ['string', 'null'] };
const time = { type: 'string' };                        // ISO 8601 with 'Z'
const ntime = { type: ['string', 'null'] };

/** Every document also carries these; the server sets them. */
const SERVER_META = { id, version: int, createdAt: time, updatedAt: time };

function schema(title, properties, required, indexes = []) {
  return {
    title,
    version: 0,
    primaryKey: 'id',
    type: 'object',
    properties: { ...SERVER_META, ...properties },
    // What a client must send when it creates one (the server fills in the rest).
    required: ['id', ...required],
    indexes,
  };
}

const ORDER_LINE = {
  type: 'object',
  properties: {
    id, lineNo: int, productId: id, quantity: int, unitPriceCents: int, discountBp: int,
    lineTotalCents: int,
    unitCostCents: int, // managers and admins only
  },
  required: ['productId', 'quantity'],
};

/**
 * The synced entities as RxDB collections: `entity` names the GraphQL fields
 * (pull<Entity>, push<Entity>, stream<Entity>), `schema` is the RxJsonSchema.
 * Documents use the GraphQL field names; enum values are the GraphQL names ('ACTIVE').
 * Collections you do not need can be left out; properties you do not need too (the
 * server only compares the fields your documents carry).
 */
export const COLLECTIONS = {
  territories: {
    entity: 'Territory',
    schema: schema('territory', { code: str, name: str, region: nstr }, ['code', 'name']),
  },
  products: {
    entity: 'Product',
    schema: schema('product', {
      sku: str, name: str, category: str, description: nstr, unitPriceCents: int,
      unitCostCents: int, // managers and admins only
      active: bool,
    }, ['sku', 'name', 'category', 'unitPriceCents']),
  },
  priceentries: {
    entity: 'PriceEntry',
    schema: schema('price entry', {
      productId: id, accountId: nid, unitPriceCents: nint, discountBp: nint, validFrom: date,
      validTo: ndate,
    }, ['productId', 'validFrom'], ['productId']),
  },
  accounts: {
    entity: 'Account',
    schema: schema('account', {
      name: str, segment: nstr, tier: str, status: str, street: nstr, city: nstr,
      postalCode: nstr, region: nstr, country: nstr, lat: num, lon: num, phone: nstr,
      email: nstr, territoryId: nid, ownerId: nid, creditLimitCents: int,
      paymentTermsDays: int, currency: str, customerSince: ndate, notes: nstr,
    }, ['name']),
  },
  contacts: {
    entity: 'Contact',
    schema: schema('contact', {
      accountId: id, firstName: str, lastName: str, title: nstr, email: nstr, phone: nstr,
      birthday: ndate, isPrimary: bool, notes: nstr,
    }, ['accountId', 'firstName', 'lastName'], ['accountId']),
  },
  leads: {
    entity: 'Lead',
    schema: schema('lead', {
      company: str, firstName: nstr, lastName: nstr, email: nstr, phone: nstr, source: str,
      status: str, statusReason: nstr, score: int, estimatedValueCents: int, ownerId: nid,
      territoryId: nid, convertedAccountId: nid, convertedContactId: nid,
      convertedAt: ntime, statusChangedAt: time,
    }, ['company']),
  },
  orders: {
    entity: 'Order',
    schema: schema('order', {
      number: nstr, accountId: id, contactId: nid, repId: id, orderDate: date, status: str,
      statusReasonCode: nstr, statusReason: nstr, subtotalCents: int, discountCents: int,
      totalCents: int,
      costCents: int, // managers and admins only
      currency: str, poNumber: nstr, notes: nstr, submittedAt: ntime, confirmedAt: ntime,
      lines: { type: 'array', items: ORDER_LINE },
    }, ['accountId', 'orderDate'], ['accountId']),
  },
  invoices: {
    entity: 'Invoice',
    schema: schema('invoice', {
      number: str, accountId: id, orderId: nid, issueDate: date, dueDate: date,
      amountCents: int, amountOpenCents: int, status: str,
    }, ['number', 'accountId', 'issueDate', 'dueDate', 'amountCents', 'amountOpenCents'],
    ['accountId']),
  },
  visitnotes: {
    entity: 'VisitNote',
    schema: schema('visit note', {
      accountId: id, authorId: id, visitedAt: time, checkInLat: num, checkInLon: num,
      outcome: str, body: str,
    }, ['accountId', 'visitedAt'], ['accountId']),
  },
  tasks: {
    entity: 'Task',
    schema: schema('task', {
      title: str, description: nstr, kind: str, dueDate: date, assigneeId: id,
      accountId: nid, contactId: nid, leadId: nid, done: bool, doneAt: ntime,
      dedupeKey: nstr,
    }, ['title', 'dueDate', 'assigneeId']),
  },
  cases: {
    entity: 'Case',
    schema: schema('case', {
      number: nstr, accountId: id, contactId: nid, category: str, priority: str,
      subject: str, description: nstr, status: str, resolution: nstr, openedById: nid,
      openedAt: time, closedAt: ntime,
    }, ['accountId', 'category', 'subject'], ['accountId']),
  },
};

// -- GraphQL query builders (pull, push, stream) -----------------------------------------

/**
 * `pull.queryBuilder` for an entity. `clientId` should be stable per installation: the
 * server keeps one sync position per (clientId, collection) and holds deleted-row
 * tombstones until every known device has pulled them.
 */
export function pullQueryBuilder(entity, clientId) {
  const op = `Pull${entity}`;
  const query = `query ${op}($checkpoint: RxCheckpointInput, $limit: Int!, $clientId: ID) {
  pull${entity}(checkpoint: $checkpoint, limit: $limit, clientId: $clientId) {
    documents checkpoint { cursor } } }`;
  return (checkpoint, limit) => ({
    query, operationName: op,
    variables: { checkpoint: checkpoint ? { cursor: checkpoint.cursor } : null, limit, clientId },
  });
}

/** `push.queryBuilder`: the answer is the list of conflicting master documents. */
export function pushQueryBuilder(entity) {
  const op = `Push${entity}`;
  const query = `mutation ${op}($rows: [RxPushRow!]) { push${entity}(rows: $rows) }`;
  return (rows) => ({ query, operationName: op, variables: { rows } });
}

/** `pull.streamQueryBuilder`: server-sent batches over graphql-ws, same shape as a pull. */
export function streamQueryBuilder(entity, clientId) {
  const op = `Stream${entity}`;
  const query = `subscription ${op}($clientId: ID) {
  stream${entity}(clientId: $clientId) { documents checkpoint { cursor } } }`;
  // The token travels in connection_init (see `connectionParams` in rxdb.md), not here.
  return () => ({ query, operationName: op, variables: { clientId } });
}

// -- conflict handling ---------------------------------------------------------------------

function equalJson(a, b) {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') {
    return (a ?? null) === (b ?? null);
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((v, i) => equalJson(v, b[i]));
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    if (k !== '_deleted' && k.startsWith('_')) continue; // _meta, _rev, _attachments
    if (!equalJson(a[k], b[k])) return false;
  }
  return true;
}

/** Fields only the server writes: never taken from the device in a merge. */
export const SERVER_FIELDS = new Set(['id', 'version', 'createdAt', 'updatedAt']);

/**
 * A three-way, per-field merge for RxDB's `conflictHandler` (RxDB 16+ shape).
 *
 * The server answers a push whose `assumedMasterState` is stale with its current
 * document (`realMasterState`). This keeps every field the device changed (compared
 * with the master state it started from) and takes everything else from the server, so
 * a manager's edit of one field and the rep's edit of another both survive. The result
 * is pushed again with the server's document as the assumed master, which applies.
 * - created on the device but the server already has it: the server's document wins;
 * - refused (the server's document is still the device's base version): the server wins;
 * - deleted on the server: the delete wins; deleted on the device while the server
 *   edited it: the edit wins (as the server decides for its own clients).
 * - isEqual compares whole documents (RxDB's own default does the same).
 */
export const fieldMergeConflictHandler = {
  isEqual(a, b) {
    return equalJson(a, b);
  },
  resolve({ newDocumentState: mine, assumedMasterState: base, realMasterState: theirs }) {
    // (a deleted master may be just {id, _deleted}: keep the device's fields around it)
    if (theirs._deleted) return { ...mine, ...theirs, _deleted: true };
    if (!base) return theirs;
    // The server's document has not moved since the device's base, yet it came back: the
    // server refused the change (e.g. a rep may not raise a credit limit). Take it, rather
    // than pushing the refused value again and again.
    if (theirs.version === base.version) return theirs;
    // Deleted here, edited there: the edit wins and the record comes back (the server's
    // own rule for deletes made on an older version).
    if (mine._deleted) return theirs;
    const out = { ...theirs };
    for (const key of Object.keys(mine)) {
      if (key.startsWith('_') || SERVER_FIELDS.has(key)) continue;
      if (!equalJson(mine[key], base[key])) out[key] = mine[key];
    }
    return out;
  },
};

/**
 * For orders: the server decides status, pricing and rejections, so its document wins
 * (RxDB's default behaviour). A rejected order comes back at once with `status:
 * 'REJECTED'` and the reason in `statusReason` / `statusReasonCode`; editing it (e.g.
 * fewer items) and setting `status: 'SUBMITTED'` again resubmits it.
 */
export const serverWinsConflictHandler = {
  isEqual(a, b) {
    return equalJson(a, b);
  },
  resolve({ newDocumentState: mine, realMasterState: theirs }) {
    return theirs._deleted ? { ...mine, ...theirs, _deleted: true } : theirs;
  },
};
