// Reference benchmark: pouchdb-server (LevelDB storage) under the workload shape of
// `python -m bench.sync_bench` (see README.md beside this file).
//
//   node run.mjs [--orders 10000] [--clients 100] [--batch 100] [--pull-records 20000]
//                [--page 1000] [--repeats 200] [--in-memory] [--keep]
//
// Always exits 0 after a completed run; prints "!!" next to anything that went wrong.
import { spawn, execSync } from 'node:child_process';
import { randomUUID, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER_BIN = path.join(HERE, 'node_modules', 'pouchdb-server', 'bin', 'pouchdb-server');
const PRODUCTS = 50;
const LINES_PER_ORDER = 3;

const { values: opt } = parseArgs({
  options: {
    orders: { type: 'string', default: '10000' },
    clients: { type: 'string', default: '100' },
    batch: { type: 'string', default: '100' },
    'pull-records': { type: 'string', default: '20000' },
    page: { type: 'string', default: '1000' },
    repeats: { type: 'string', default: '200' },
    'in-memory': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false }, // keep the temp dir (data + log.txt)
  },
});
const N = Object.fromEntries(
  ['orders', 'clients', 'batch', 'pull-records', 'page', 'repeats'].map((k) => [k, Number(opt[k])]));

// -- ids and documents ------------------------------------------------------------------

/** A UUIDv7 (48-bit ms timestamp, then random), like the client-minted ids of our push. */
function uuid7() {
  const b = randomBytes(16);
  const ms = BigInt(Date.now());
  for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
const qty = () => 1 + Math.floor(Math.random() * 5);

function order(n, accountId, productIds, extra = {}) {
  return {
    _id: uuid7(), type: 'order', accountId, poNumber: `PO-${n}`,
    clientTime: new Date().toISOString(),
    lines: Array.from({ length: LINES_PER_ORDER },
      () => ({ id: uuid7(), productId: pick(productIds), quantity: qty() })),
    ...extra,
  };
}

/** The puller's data set, mixed like ours: 1 territory, 50 products, 997 accounts,
 * 3,989 contacts, the rest submitted orders with 3 embedded lines (20,000 in all). */
function pullDataset(total) {
  const territory = { _id: randomUUID(), type: 'territory', name: 'Bench territory' };
  const products = Array.from({ length: PRODUCTS }, (_, i) => ({
    _id: randomUUID(), type: 'product', sku: `SKU-${i}`, name: `Product ${i}`,
    priceCents: 100 + i * 37, costCents: 60 + i * 20, active: true,
  }));
  const nAccounts = Math.round(total * 997 / 20000);
  const nContacts = Math.round(total * 3989 / 20000);
  const accounts = Array.from({ length: nAccounts }, (_, i) => ({
    _id: randomUUID(), type: 'account', name: `Account ${i}`, territoryId: territory._id,
    creditLimitCents: 10 ** 13, city: 'Springfield',
  }));
  const contacts = Array.from({ length: nContacts }, (_, i) => ({
    _id: randomUUID(), type: 'contact', accountId: accounts[i % nAccounts]._id,
    name: `Contact ${i}`, email: `contact${i}@example.com`, phone: '+1 555 0100',
  }));
  const productIds = products.map((p) => p._id);
  const nOrders = total - 1 - PRODUCTS - nAccounts - nContacts;
  const orders = Array.from({ length: nOrders }, (_, i) =>
    order(i + 1, accounts[i % nAccounts]._id, productIds, { status: 'SUBMITTED' }));
  return [territory, ...products, ...accounts, ...contacts, ...orders];
}

// -- process and machine readings -------------------------------------------------------

const CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

function procStat(pid) {
  try {
    const after = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return { ppid: Number(after[1]), ticks: Number(after[11]) + Number(after[12]) };
  } catch { return null; } // the process is gone
}

/** The pid and all its descendants. */
function processTree(root) {
  const parent = new Map();
  for (const name of readdirSync('/proc')) {
    if (/^\d+$/.test(name)) { const s = procStat(name); if (s) parent.set(Number(name), s.ppid); }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parent) if (ppid === tree[i]) tree.push(pid);
  }
  return tree;
}

/** utime+stime of the process tree, in ms. */
function treeCpuMs(root) {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += procStat(pid)?.ticks ?? 0;
  return ticks * 1000 / CLK_TCK;
}

/** Whole machine: busy and total jiffies from /proc/stat. */
function machineJiffies() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function clientCpuMs() { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }

function peakRssMb(pid) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM'));
    return Number(line.split(/\s+/)[1]) / 1024;
  } catch { return NaN; }
}

/** CPU of the server tree, this client and the machine over fn(). */
async function measured(serverPid, fn) {
  const s0 = treeCpuMs(serverPid), c0 = clientCpuMs(), m0 = machineJiffies();
  const t0 = performance.now();
  const result = await fn();
  const wallMs = performance.now() - t0;
  const s1 = treeCpuMs(serverPid), c1 = clientCpuMs(), m1 = machineJiffies();
  const cores = (m1.total - m0.total) / (wallMs / 1000 * CLK_TCK) || 1; // online CPUs
  const busyMs = (m1.busy - m0.busy) * 1000 / CLK_TCK;
  return {
    result, wallMs, serverMs: s1 - s0, clientMs: c1 - c0,
    machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total || 1),
    // CPU neither the server nor this client used: other processes (and some kernel work).
    // Well above zero means something else ran on the machine during the phase.
    otherCores: Math.max(0, busyMs - (s1 - s0) - (c1 - c0)) / wallMs, cores,
  };
}

// -- server -----------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

async function startServer(dir) {
  const port = await freePort();
  // Same log level as our uvicorn (--log-level warning --no-access-log): no per-request lines.
  const config = path.join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ log: { level: 'warning', file: path.join(dir, 'log.txt') } }));
  const args = [SERVER_BIN, '--host', '127.0.0.1', '--port', String(port), '--dir', dir,
    '--config', config, '--no-stdout-logs'];
  if (opt['in-memory']) args.push('--in-memory');
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`pouchdb-server exited ${child.exitCode}:\n${output}`);
    try { if ((await fetch(url + '/')).ok) return { child, url, output: () => output }; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  throw new Error(`pouchdb-server did not answer in time:\n${output}`);
}

async function stopServer(server) {
  if (server.child.exitCode !== null) return;
  const exited = new Promise((r) => server.child.once('exit', r));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function call(url, init = {}) {
  const r = await fetch(url, init);
  const body = await r.json();
  if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${url}: HTTP ${r.status} ${JSON.stringify(body)}`);
  return body;
}

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const postBulk = (url, body) => call(`${url}/_bulk_docs`, { method: 'POST', headers: JSON_HEADERS, body });

// -- phases -----------------------------------------------------------------------------

/** Every client pushes its batches one after another; all clients at once. */
async function push(dbUrl, work) {
  const fig = { ok: 0, problems: [] };
  await Promise.all(work.map(async (batches) => {
    for (const body of batches) {
      for (const r of await postBulk(dbUrl, body)) {
        if (r.ok && !r.error) fig.ok++;
        else fig.problems.push(`${r.id}: ${r.error} ${r.reason ?? ''}`);
      }
    }
  }));
  return fig;
}

const changesUrl = (dbUrl, since, limit) =>
  `${dbUrl}/_changes?include_docs=true&limit=${limit}&since=${encodeURIComponent(since)}`;

/** One client reads the _changes feed page after page until a short page. */
async function initialPull(dbUrl, page) {
  let since = 0, records = 0, pages = 0, bytes = 0;
  const ids = new Set(), types = {};
  for (;;) {
    const r = await fetch(changesUrl(dbUrl, since, page));
    const text = await r.text();
    bytes += text.length;
    const body = JSON.parse(text);
    pages++;
    for (const c of body.results) {
      records++; ids.add(c.id);
      types[c.doc.type] = (types[c.doc.type] ?? 0) + 1;
    }
    since = body.last_seq;
    if (body.results.length < page) break;
  }
  return { records, unique: ids.size, pages, bytes, since, types };
}

async function emptyPulls(dbUrl, since, page, repeats) {
  const ms = [];
  let nonEmpty = 0;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    const body = await call(changesUrl(dbUrl, since, page));
    ms.push(performance.now() - t0);
    if (body.results.length) nonEmpty++;
  }
  ms.sort((a, b) => a - b);
  const p = (q) => ms[Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)];
  return { p50: p(0.5), p95: p(0.95), max: ms[ms.length - 1], nonEmpty };
}

// -- main -------------------------------------------------------------------------------

const fmt = (x, d = 0) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const row = (k, v) => console.log(`  ${k.padEnd(44)} ${v}`);

async function main() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'couch-reference-'));
  const failures = [];
  const server = await startServer(dir);
  const pid = server.child.pid;
  try {
    // Push workload, built (and encoded) before the clock starts.
    const perClient = Math.floor(N.orders / N.clients), extra = N.orders % N.clients;
    const productIds = Array.from({ length: PRODUCTS }, () => randomUUID());
    const work = Array.from({ length: N.clients }, (_, c) => {
      const accounts = [randomUUID(), randomUUID()];
      const docs = Array.from({ length: perClient + (c < extra ? 1 : 0) },
        (_, m) => order(m + 1, accounts[(m + 1) % 2], productIds));
      const batches = [];
      for (let i = 0; i < docs.length; i += N.batch) {
        batches.push(Buffer.from(JSON.stringify({ docs: docs.slice(i, i + N.batch) })));
      }
      return batches;
    });
    const pushBytes = work.flat().reduce((a, b) => a + b.length, 0);

    const pushDb = `${server.url}/orders`, pullDb = `${server.url}/puller`;
    await call(pushDb, { method: 'PUT' });
    await call(pullDb, { method: 'PUT' });

    const P = await measured(pid, () => push(pushDb, work));
    if (P.result.ok !== N.orders) failures.push(`push: ${P.result.ok} of ${N.orders} ok; ${P.result.problems.slice(0, 5).join('; ')}`);
    const pushDocCount = (await call(pushDb)).doc_count;
    if (pushDocCount !== N.orders) failures.push(`push: database holds ${pushDocCount} docs, expected ${N.orders}`);

    // Seed the pull database through the same write path, untimed.
    const seed = pullDataset(N['pull-records']);
    for (let i = 0; i < seed.length; i += 1000) {
      const res = await postBulk(pullDb, JSON.stringify({ docs: seed.slice(i, i + 1000) }));
      const bad = res.filter((r) => !r.ok);
      if (bad.length) throw new Error(`seeding: ${bad.length} failed, first ${JSON.stringify(bad[0])}`);
    }

    const L = await measured(pid, () => initialPull(pullDb, N.page));
    if (L.result.records !== N['pull-records'] || L.result.unique !== N['pull-records']) {
      failures.push(`pull: ${L.result.records} records (${L.result.unique} unique), expected ${N['pull-records']}`);
    }
    const E = await measured(pid, () => emptyPulls(pullDb, L.result.since, N.page, N.repeats));
    if (E.result.nonEmpty) failures.push(`empty pull: ${E.result.nonEmpty} pulls were not empty`);

    // Report.
    const nproc = execSync('nproc').toString().trim();
    const load = os.loadavg().map((x) => x.toFixed(2)).join(', ');
    console.log(`\n== pouchdb-server reference (${opt['in-memory'] ? 'IN-MEMORY' : 'LevelDB'} storage), `
      + `${fmt(N.orders)} orders x ${LINES_PER_ORDER} lines from ${N.clients} clients in batches of ${N.batch}, `
      + `pull page ${N.page} ==`);
    console.log(`   ${new Date().toISOString()}, node ${process.version}, nproc ${nproc}, `
      + `load average at report time ${load} (the client shares the machine with the server)`);
    row('push, docs/s', fmt(P.result.ok / (P.wallMs / 1000)));
    row('  ok docs / wall time', `${fmt(P.result.ok)} / ${(P.wallMs / 1000).toFixed(2)} s (${fmt(pushBytes / 1e6, 1)} MB of request bodies)`);
    row('  server CPU (process tree), per doc', `${fmt(P.serverMs)} ms, ${(P.serverMs / N.orders).toFixed(3)} ms/doc`);
    row('  bench client CPU, per doc', `${fmt(P.clientMs)} ms, ${(P.clientMs / N.orders).toFixed(3)} ms/doc`);
    row('  whole machine busy', `${(P.machineBusy * 100).toFixed(0)} % of ${P.cores.toFixed(0)} cores`);
    row('  CPU of everything else (other processes)', `${P.otherCores.toFixed(2)} cores`);
    row('initial pull, records/s', fmt(L.result.records / (L.wallMs / 1000)));
    row('  records / pages / wall time', `${fmt(L.result.records)} / ${L.result.pages} / ${(L.wallMs / 1000).toFixed(2)} s (${fmt(L.result.bytes / 1e6, 1)} MB)`);
    row('  by type', Object.entries(L.result.types).map(([k, v]) => `${k} ${fmt(v)}`).join(', '));
    row('  server CPU, per record', `${fmt(L.serverMs)} ms, ${(L.serverMs / Math.max(1, L.result.records)).toFixed(3)} ms/record`);
    row('  CPU of everything else (other processes)', `${L.otherCores.toFixed(2)} cores`);
    row('empty incremental pull p50 / p95 / max', `${E.result.p50.toFixed(1)} / ${E.result.p95.toFixed(1)} / ${E.result.max.toFixed(1)} ms`);
    row('  server CPU per empty pull', `${(E.serverMs / N.repeats).toFixed(2)} ms`);
    row('  CPU of everything else (other processes)', `${E.otherCores.toFixed(2)} cores`);
    row('server peak RSS (VmHWM)', `${fmt(peakRssMb(pid))} MB`);
    for (const f of failures) console.log(`  !! ${f}`);
  } catch (e) {
    console.log(`  !! run aborted: ${e.stack ?? e}\n${server.output().slice(-2000)}`);
  } finally {
    await stopServer(server);
    if (opt.keep) console.log(`   kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

await main();
