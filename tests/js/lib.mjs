// Shared helpers for the client scripts driven by tests/test_js_clients.py.
//
// A script reads its JSON config (argv[2]: server URLs, logins, seeded ids), runs named
// scenarios, prints one JSON report line on stdout and exits 1 if any scenario failed.

import fs from 'node:fs';

export function loadConfig() {
  const path = process.argv[2];
  if (!path) {
    console.error('usage: node <script>.mjs <config.json>');
    process.exit(2);
  }
  return JSON.parse(fs.readFileSync(path, 'utf8'));
}

export class ExpectationError extends Error {}

export function expect(cond, message, details) {
  if (!cond) {
    const err = new ExpectationError(message);
    err.details = details;
    throw err;
  }
}

export function expectEqual(actual, expected, message) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    const err = new ExpectationError(`${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
    err.details = { actual, expected };
    throw err;
  }
}

/** Runs scenarios in order, records facts and failures, prints the report at the end. */
export class Report {
  constructor(client) {
    this.client = client;
    this.scenarios = {};
    this.started = Date.now();
    this.notes = [];
  }

  async scenario(name, fn) {
    const t0 = Date.now();
    const facts = {};
    try {
      await fn(facts);
      this.scenarios[name] = { ok: true, ms: Date.now() - t0, facts };
    } catch (err) {
      this.scenarios[name] = {
        ok: false, ms: Date.now() - t0, facts,
        error: err instanceof ExpectationError ? err.message : `${err?.name}: ${err?.message ?? err}`,
        details: err?.details ?? (err instanceof ExpectationError ? undefined : String(err?.stack ?? '')),
      };
      console.error(`[${this.client}] scenario ${name} FAILED:`, err);
    }
  }

  get ok() {
    return Object.values(this.scenarios).every((s) => s.ok);
  }

  finish(extra = {}) {
    const report = {
      client: this.client, ok: this.ok, ms: Date.now() - this.started,
      scenarios: this.scenarios, notes: this.notes, ...extra,
    };
    process.stdout.write(JSON.stringify(report) + '\n');
    // The storages (Loki, RxDB's memory storage, the graphql-ws socket) keep the event
    // loop alive: leave explicitly once stdout is flushed.
    process.stdout.write('', () => process.exit(report.ok ? 0 : 1));
  }
}

// -- GraphQL over HTTP ----------------------------------------------------------------------

export class GraphQLError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join('; '));
    this.errors = errors;
  }
}

export async function gql(url, token, query, variables = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) throw new GraphQLError(body.errors);
  return body.data;
}

const LOGIN = `mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    __typename ... on LoginSuccess { accessToken } ... on AuthError { code message } } }`;

export async function login(config, user) {
  const data = await gql(config.http, null, LOGIN, { email: config.users[user], password: config.password });
  expect(data.login.__typename === 'LoginSuccess', `login ${user}`, data.login);
  return data.login.accessToken;
}

/** A signed-in GraphQL caller: `await as.manager1(query, vars)`. */
export async function signIn(config, users) {
  const out = {};
  for (const user of users) {
    const token = await login(config, user);
    const call = (query, variables) => gql(config.http, token, query, variables);
    call.token = token;
    out[user] = call;
  }
  return out;
}

/** The server's current document for a node (null when gone or out of scope). */
export async function node(call, id, fields) {
  const data = await call(`query Node($id: ID!) { node(id: $id) { id ${fields} } }`, { id });
  return data.node;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns a truthy value; throws after `timeout` ms. */
export async function waitFor(what, probe, { timeout = 10000, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) {
      throw new ExpectationError(`timed out after ${timeout} ms waiting for ${what}`);
    }
    await sleep(interval);
  }
}

/**
 * A `fetch` for the client library that counts requests by GraphQL operation name and
 * can simulate being offline (requests fail as a network error would).
 */
export function countingFetch() {
  const counts = {};
  const state = { offline: false, counts, log: [] };
  state.fetch = async (input, init) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const body = await req.clone().text();
    let op = '?';
    try {
      const parsed = JSON.parse(body);
      op = parsed.operationName || (parsed.query.match(/^\s*(?:query|mutation)\s+(\w+)/) || [])[1] || '?';
    } catch { /* not JSON */ }
    if (state.offline) {
      state.log.push(`${op} (offline)`);
      throw new TypeError('fetch failed (simulated offline)');
    }
    counts[op] = (counts[op] || 0) + 1;
    state.log.push(op);
    return fetch(req);
  };
  state.count = (op) => counts[op] || 0;
  return state;
}

/** Collects console.error / console.warn output (the libraries report problems there). */
export function captureConsole() {
  const captured = { error: [], warn: [] };
  for (const level of ['error', 'warn']) {
    const original = console[level].bind(console);
    console[level] = (...args) => {
      captured[level].push(args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
      original(...args);
    };
  }
  return captured;
}

export function uuid() {
  return crypto.randomUUID();
}

export function today() {
  return new Date().toISOString().slice(0, 10);
}
