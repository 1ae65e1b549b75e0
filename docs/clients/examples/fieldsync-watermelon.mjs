// fieldsync for WatermelonDB: the tables as the server sends them, and the
// pullChanges / pushChanges pair for `synchronize()`.
//
// Plain data and functions, no imports: wrap TABLES with WatermelonDB's own
// `tableSchema` / `appSchema` in your app (see docs/clients/watermelondb.md). The tests
// (tests/js/watermelon.mjs) import this very file.

const s = (name, extra = {}) => ({ name, type: 'string', ...extra });
const ns = (name, extra = {}) => ({ name, type: 'string', isOptional: true, ...extra });
const n = (name) => ({ name, type: 'number' });
const nn = (name) => ({ name, type: 'number', isOptional: true });
const b = (name) => ({ name, type: 'boolean' });

/**
 * Table name → columns (snake_case, as the server sends them). Ids are UUID strings,
 * dates 'YYYY-MM-DD' and timestamps ISO 8601 strings, money integer cents. Every
 * table has `version` (the server's row version: leave it alone, the server uses it
 * to merge your pushes). `created_at` / `updated_at` are left out on purpose:
 * WatermelonDB reserves those names for its own number columns.
 * Tables and columns you do not need can be left out.
 */
export const TABLES = {
  territories: [n('version'), s('code'), s('name'), ns('region')],
  products: [n('version'), s('sku'), s('name'), s('category'), ns('description'),
    n('unit_price_cents'), b('active'),
    nn('unit_cost_cents'), // managers and admins only
  ],
  price_entries: [n('version'), s('product_id', { isIndexed: true }), ns('account_id'),
    nn('unit_price_cents'), nn('discount_bp'), s('valid_from'), ns('valid_to')],
  accounts: [n('version'), s('name'), ns('segment'), s('tier'), s('status'), ns('street'),
    ns('city'), ns('postal_code'), ns('region'), ns('country'), nn('lat'), nn('lon'), ns('phone'),
    ns('email'), ns('territory_id'), ns('owner_id'), n('credit_limit_cents'),
    n('payment_terms_days'), s('currency'), ns('customer_since'), ns('notes')],
  contacts: [n('version'), s('account_id', { isIndexed: true }), s('first_name'), s('last_name'),
    ns('title'), ns('email'), ns('phone'), ns('birthday'), b('is_primary'), ns('notes')],
  leads: [n('version'), s('company'), ns('first_name'), ns('last_name'), ns('email'), ns('phone'),
    s('source'), s('status'), ns('status_reason'), n('score'), n('estimated_value_cents'),
    ns('owner_id'), ns('territory_id'), ns('converted_account_id'), ns('converted_contact_id'),
    ns('converted_at'), s('status_changed_at')],
  orders: [n('version'), ns('number'), s('account_id', { isIndexed: true }), ns('contact_id'),
    s('rep_id'), s('order_date'), s('status'), ns('status_reason_code'), ns('status_reason'),
    n('subtotal_cents'), n('discount_cents'), n('total_cents'),
    nn('cost_cents'), // managers and admins only
    s('currency'), ns('po_number'), ns('notes'), ns('submitted_at'), ns('confirmed_at'),
    // JSON array: [{"productId", "quantity", "discountBp", …server-priced fields}]
    s('lines')],
  invoices: [n('version'), s('number'), s('account_id', { isIndexed: true }), ns('order_id'),
    s('issue_date'), s('due_date'), n('amount_cents'), n('amount_open_cents'), s('status')],
  visit_notes: [n('version'), s('account_id', { isIndexed: true }), s('author_id'),
    s('visited_at'), nn('check_in_lat'), nn('check_in_lon'), s('outcome'), s('body')],
  tasks: [n('version'), s('title'), ns('description'), s('kind'), s('due_date'), s('assignee_id'),
    ns('account_id'), ns('contact_id'), ns('lead_id'), b('done'), ns('done_at'), ns('dedupe_key')],
  cases: [n('version'), ns('number'), s('account_id', { isIndexed: true }), ns('contact_id'),
    s('category'), s('priority'), s('subject'), ns('description'), s('status'), ns('resolution'),
    ns('opened_by_id'), s('opened_at'), ns('closed_at')],
};

const PULL = `query WatermelonPull($lastPulledAt: Float, $schemaVersion: Int, $migration: JSON,
  $clientId: ID) {
  watermelonPull(lastPulledAt: $lastPulledAt, schemaVersion: $schemaVersion,
    migration: $migration, clientId: $clientId) }`;

const PUSH = `mutation WatermelonPush($changes: JSON!, $lastPulledAt: Float, $clientId: ID) {
  watermelonPush(changes: $changes, lastPulledAt: $lastPulledAt, clientId: $clientId) }`;

export class SyncError extends Error {
  constructor(message, errors) {
    super(message);
    this.errors = errors;
  }
}

/**
 * `pullChanges` and `pushChanges` for WatermelonDB's `synchronize()`.
 *
 *   url        the GraphQL endpoint, e.g. 'https://sync.example.com/graphql'
 *   getToken   () => the current access token (refresh it yourself before it expires)
 *   clientId   a stable id for this installation (the server keeps its sync position)
 *   onPushed   optional ({applied, rejected, conflicts}) => void: `rejected` lists the
 *              records a business rule refused, with `code` and `message` — show them.
 *              The server's outcome (e.g. an order stored as REJECTED with its reason)
 *              arrives on the next pull.
 *   fetch      optional fetch implementation
 */
export function fieldsyncSync({ url, getToken, clientId, onPushed, fetch = globalThis.fetch }) {
  async function call(query, variables) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await getToken()}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = await res.json();
    if (body.errors) {
      // Thrown errors abort this synchronize(); nothing is marked as synced.
      throw new SyncError(body.errors.map((e) => e.message).join('; '), body.errors);
    }
    return body.data;
  }
  return {
    async pullChanges({ lastPulledAt, schemaVersion, migration }) {
      const data = await call(PULL, {
        lastPulledAt: lastPulledAt ?? null, schemaVersion, migration: migration ?? null, clientId,
      });
      // {changes, timestamp} (+ experimentalStrategy: 'replacement' after a long absence)
      return data.watermelonPull;
    },
    async pushChanges({ changes, lastPulledAt }) {
      const data = await call(PUSH, { changes, lastPulledAt, clientId });
      if (onPushed) onPushed(data.watermelonPush);
      // No experimentalRejectedIds: concurrent edits are merged on the server and
      // refusals are settled there too, so every pushed record counts as synced.
    },
  };
}
