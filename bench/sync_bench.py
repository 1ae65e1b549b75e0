"""Sync throughput against a real uvicorn server, with its budgets.

    python -m bench.sync_bench --db sqlite|postgres [--orders 10000] [--clients 100]
        [--batch 100] [--pull-records 20000] [--workers 1[,2]] [--py-spy-dir DIR]

Each round: a fresh database, seeded reps/products and one rep's ~20k-record scope; a
uvicorn subprocess; 100 concurrent devices push 10,000 offline orders (3 lines each);
one rep's initial pull; repeated empty incremental pulls; then a raw bulk insert of a
copy of the same rows for the push/raw ratio. Prints figures against the budgets and
always exits 0 (it is a benchmark, not a test): a missed budget is printed as MISS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench import client as dev
from bench.dataset import JWT_SECRET, PG_URL, World, fresh_database, seed
from bench.rawinsert import RawFigures, raw_insert
from bench.serverproc import (
    BackendCpu,
    ServerProcess,
    ServerRss,
    cpu_seconds,
    machine_cpu_seconds,
    reset_peak_rss,
    server_peak_rss,
    start_server,
    stop_server,
    vm_hwm_kb,
)

PUSH_BUDGET = 3_500  # orders/s, on PostgreSQL
PULL_BUDGET = 10_000  # records/s
EMPTY_P50_BUDGET_MS = 10.0
COUCH_PUSH = 3_400  # pouchdb-server, docs/s, same kind of machine
COUCH_PULL = 3_600


@dataclass
class Round:
    db: str
    workers: int
    world: World | None = None
    login: dev.LoginFigures | None = None
    push: dev.PushFigures | None = None
    pull: dev.PullFigures | None = None
    empty: dev.LatencyFigures | None = None
    raw: RawFigures | None = None
    server_rss: ServerRss | None = None
    client_rss_kb: int = 0
    server_log: Path | None = None
    #: Server CPU seconds (process tree, all threads) spent during each phase.
    cpu_s: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of the PostgreSQL backends serving the benchmark database, per phase.
    db_cpu_s: dict[str, float] = field(default_factory=dict)
    #: The benchmark's own CPU: it shares the cores with the server.
    client_cpu_s: dict[str, float] = field(default_factory=dict)
    #: Every process on the machine (the kernel too): the total the cores had to give.
    machine_cpu_s: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


# -- one round ------------------------------------------------------------------------------

def run_round(args: argparse.Namespace, rnd: Round, workdir: Path) -> None:
    workers = rnd.workers
    rng = random.Random(args.seed)
    print(f"\n[{args.db} workers={workers}] preparing database and seeding…", flush=True)
    url = fresh_database(args.db, workdir, args.pg_url)
    rnd.world = asyncio.run(seed(url, args.clients, args.pull_records, rng))
    boxes = dev.outboxes(rnd.world.pushers, args.orders, rnd.world.products, rng)
    reset_peak_rss()
    rnd.server_log = workdir / f"uvicorn-{args.db}-w{workers}.log"
    server = start_server(url, JWT_SECRET, workers, rnd.server_log)
    try:
        asyncio.run(_over_http(args, rnd, server, boxes))
        rnd.server_rss = server_peak_rss(server)
        rnd.client_rss_kb = vm_hwm_kb()
    finally:
        stop_server(server)
    _guard(rnd, "raw insert", lambda: _raw(args, rnd))


def _raw(args: argparse.Namespace, rnd: Round) -> None:
    assert rnd.world is not None
    print(f"[{args.db} workers={rnd.workers}] raw bulk insert…", flush=True)
    rnd.raw = asyncio.run(raw_insert(rnd.world.url, [r.user_id for r in rnd.world.pushers],
                                     args.batch))


def _guard(rnd: Round, phase: str, fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except Exception as e:  # a benchmark reports a broken phase and goes on
        rnd.failures.append(f"{phase}: {type(e).__name__}: {e}")
        traceback.print_exc()


async def _over_http(args: argparse.Namespace, rnd: Round, server: ServerProcess,
                     boxes: list[list[dict[str, object]]]) -> None:
    world = rnd.world
    assert world is not None
    tag = f"[{args.db} workers={rnd.workers}]"
    print(f"{tag} server up at {server.url}; logging {len(world.pushers) + 1} reps in…",
          flush=True)
    rnd.login = await dev.login_all(server.url, [*world.pushers, world.puller])
    tokens = rnd.login.tokens
    print(f"{tag} push: {args.orders} orders from {len(world.pushers)} clients…", flush=True)
    devices = dev.devices(server.url, tokens, world.pushers, boxes, args.batch, args.return_data)
    try:
        with PySpy(args, server, "push"), _cpu(rnd, server, "push"):
            rnd.push = await dev.push_phase(devices, args.max_inflight)
    finally:
        await devices.aclose()
    token, cid = tokens[world.puller.email], dev.pull_client_id(world.puller)
    print(f"{tag} initial pull of {world.pull_total} records…", flush=True)
    try:
        with PySpy(args, server, "pull"), _cpu(rnd, server, "pull"):
            rnd.pull = await dev.initial_pull(server.url, token, cid, args.page)
        print(f"{tag} {args.repeats} empty incremental pulls…", flush=True)
        with PySpy(args, server, "empty"), _cpu(rnd, server, "empty"):
            rnd.empty = await dev.empty_pulls(server.url, token, cid, rnd.pull.cursor,
                                              args.repeats)
    except dev.BenchError as e:
        rnd.failures.append(str(e))


@contextmanager
def _cpu(rnd: Round, server: ServerProcess, phase: str) -> Iterator[None]:
    dbname = sa.make_url(rnd.world.url).database if rnd.world and rnd.db == "postgres" else None
    backends = BackendCpu(dbname) if dbname else None
    with backends or nullcontext():
        before = cpu_seconds(server)
        mine, machine = time.process_time(), machine_cpu_seconds()
        yield
        rnd.client_cpu_s[phase] = time.process_time() - mine
        rnd.machine_cpu_s[phase] = machine_cpu_seconds() - machine
        rnd.cpu_s[phase] = cpu_seconds(server) - before
    if backends is not None:
        rnd.db_cpu_s[phase] = backends.seconds


class PySpy:
    """Optionally record the server with py-spy (collapsed stacks) while a phase runs."""

    def __init__(self, args: argparse.Namespace, server: ServerProcess, phase: str) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.cmd: list[str] | None = None
        if args.py_spy_dir is None:
            return
        out = Path(args.py_spy_dir) / f"{args.db}-w{server.workers}-{phase}.folded"
        out.parent.mkdir(parents=True, exist_ok=True)
        self.cmd = ["py-spy", "record", "--pid", str(server.proc.pid), "--subprocesses",
                    "--format", "raw", "--threads", "--rate", "250", "--output", str(out)]

    def __enter__(self) -> None:
        if self.cmd is not None:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # let py-spy attach before the phase starts

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)


# -- report ---------------------------------------------------------------------------------

def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS  <<<"


def _row(name: str, value: str, budget: str = "", ref: str = "", verdict: str = "") -> str:
    return f"  {name:<34} {value:>34} {budget:>12} {ref:>16}  {verdict}"


def _login_rows(rnd: Round) -> list[str]:
    lg = rnd.login
    if lg is None:
        return []
    rows = [_row("login (setup, not budgeted)", f"{len(lg.tokens)} reps in {lg.elapsed_s:.1f} s")]
    rows += [f"    ! {msg}" for msg in _distinct(lg.retried)[:4]]
    return rows


def _push_rows(rnd: Round) -> list[str]:
    p = rnd.push
    if p is None:
        return [_row("push", "not measured", verdict="MISS  <<<")]
    on_pg = rnd.db == "postgres"
    complete = p.applied == p.orders
    verdict = _verdict(complete and p.rate >= PUSH_BUDGET) if on_pg else "(budget is for PG)"
    if not complete:
        verdict = f"MISS  <<< only {p.applied}/{p.orders} APPLIED"
    lat = p.latencies_s
    rows = [
        _row("push (orders/s, APPLIED only)", f"{p.rate:,.0f}", f">= {PUSH_BUDGET:,}",
             f"{COUCH_PUSH:,} couch", verdict),
        _row("  orders pushed / wall time", f"{p.orders:,} / {p.elapsed_s:.2f} s"),
        _row("  statuses", ", ".join(f"{k}={v}" for k, v in sorted(p.statuses.items()))),
        _row("  batch latency p50/p95/max (s)",
             f"{dev.percentile(lat, .5):.2f}/{dev.percentile(lat, .95):.2f}/{max(lat, default=0):.2f}"),
    ]
    rows += _cpu_rows(rnd, "push", p.elapsed_s, p.applied, "order")
    rows += [f"    ! {msg}" for msg in _distinct(p.problems)[:8]]
    return rows


def _cpu_rows(rnd: Round, phase: str, wall_s: float, units: int, unit: str) -> list[str]:
    """CPU per unit of work: unlike throughput, it barely moves when the machine is busy."""
    rows = []
    for label, table in (("server", rnd.cpu_s), ("PostgreSQL backends", rnd.db_cpu_s),
                         ("benchmark client", rnd.client_cpu_s),
                         ("whole machine", rnd.machine_cpu_s)):
        cpu = table.get(phase)
        if cpu is None or not wall_s:
            continue
        per = f", {cpu * 1000 / units:.2f} ms/{unit}" if units else ""
        rows.append(_row(f"  {label} CPU", f"{cpu:.1f} s = {cpu / wall_s:.2f} cores{per}"))
    return rows


def _distinct(messages: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    for m in messages:
        key = re.sub(r"mutation \d+|rep\d+@|ref [0-9a-f]+", "#", m)
        seen[key] = seen.get(key, 0) + 1
    return [f"{k}  (x{n})" for k, n in seen.items()]


def _pull_rows(rnd: Round) -> list[str]:
    p, world = rnd.pull, rnd.world
    if p is None or world is None:
        return [_row("initial pull", "not measured", verdict="MISS  <<<")]
    exact = dict(p.counts) == world.pull_expected and set(p.ops) == {"UPSERT"}
    count_verdict = "OK" if exact else f"WRONG  <<< expected {world.pull_expected}"
    return [
        _row("initial pull (records/s)", f"{p.rate:,.0f}", f">= {PULL_BUDGET:,}",
             f"{COUCH_PULL:,} couch", _verdict(exact and p.rate >= PULL_BUDGET)),
        _row("  records / wall time", f"{p.records:,} / {p.elapsed_s:.2f} s"),
        _row("  records vs seeded", f"{p.records:,} / {world.pull_total:,}", verdict=count_verdict),
        _row("  pages / payload", f"{p.pages} / {p.bytes / 1e6:.1f} MB"),
        *_cpu_rows(rnd, "pull", p.elapsed_s, p.records, "record"),
    ]


def _empty_rows(rnd: Round) -> list[str]:
    e = rnd.empty
    if e is None:
        return [_row("empty incremental pull", "not measured", verdict="MISS  <<<")]
    rows = [
        _row("empty incremental pull p50 (ms)", f"{e.p(.5):.1f}", f"<= {EMPTY_P50_BUDGET_MS:g}",
             "", _verdict(e.p(.5) <= EMPTY_P50_BUDGET_MS and not e.unexpected)),
        _row("  p95 / max (ms), n", f"{e.p(.95):.1f} / {e.p(1.0):.1f}, {len(e.samples_s)}"),
        *_cpu_rows(rnd, "empty", sum(e.samples_s), len(e.samples_s), "pull"),
    ]
    if e.unexpected:
        rows.append(f"    ! {e.unexpected} 'empty' pulls returned changes or hasMore")
    return rows


def _raw_rows(rnd: Round) -> list[str]:
    r, p = rnd.raw, rnd.push
    if r is None:
        return [_row("raw bulk insert", "not measured")]
    rows = [_row("raw bulk insert (orders/s)", f"{r.rate:,.0f}"),
            _row("  orders+lines / wall time", f"{r.orders:,}+{r.lines:,} / {r.elapsed_s:.2f} s")]
    if p is not None and r.rate:
        ratio = p.rate / r.rate
        slower = f"raw {1 / ratio:.1f}x faster" if ratio else "push failed"
        rows.append(_row("push/raw ratio", f"{ratio:.3f} ({slower})"))
    return rows


def _rss_rows(rnd: Round) -> list[str]:
    s = rnd.server_rss
    server = "n/a" if s is None else (
        f"{s.largest_kb / 1024:,.0f} MB" if s.processes == 1
        else f"{s.largest_kb / 1024:,.0f} MB max, {s.total_kb / 1024:,.0f} MB in {s.processes} procs")
    return [_row("server peak RSS (VmHWM)", server),
            _row("bench client peak RSS (VmHWM)", f"{rnd.client_rss_kb / 1024:,.0f} MB")]


def _server_log_rows(rnd: Round) -> list[str]:
    if rnd.server_log is None or not rnd.server_log.exists():
        return []
    text = rnd.server_log.read_text(errors="replace")
    tracebacks = text.count("Traceback (most recent call last)")
    if not tracebacks:
        return []
    first = text[text.index("Traceback"):].splitlines()[:25]
    return [f"    ! server logged {tracebacks} traceback(s); first one:",
            *(f"      {line}" for line in first)]


def report(args: argparse.Namespace, rnd: Round) -> None:
    inflight = f" (max {args.max_inflight} in flight)" if args.max_inflight else ""
    print(f"\n== fieldsync sync benchmark: {rnd.db}, uvicorn --workers {rnd.workers}, "
          f"{args.orders:,} orders x 3 lines from {args.clients} clients in batches of "
          f"{args.batch}{inflight}, returnData {str(args.return_data).lower()}, "
          f"pull page {args.page} ==")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"   machine: {os.cpu_count()} CPUs, load average at report time {load} "
          "(the benchmark client shares the machine with the server)")
    print(_row("metric", "value", "budget", "reference", "verdict"))
    for rows in (_login_rows(rnd), _push_rows(rnd), _raw_rows(rnd), _pull_rows(rnd), _empty_rows(rnd),
                 _rss_rows(rnd), _server_log_rows(rnd)):
        print("\n".join(rows))
    for f in rnd.failures:
        print(f"  !! {f}")
    sys.stdout.flush()


# -- entry point ----------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.sync_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    p.add_argument("--orders", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--pull-records", type=int, default=20_000)
    p.add_argument("--max-inflight", type=int, default=0,
                   help="cap on push requests in flight at once (default 0: every client at "
                   "once); a work-around for the connection-pool starvation described in "
                   "bench/README.md")
    p.add_argument("--return-data", action="store_true",
                   help="push answers carry each record (default: returnData false, as a "
                        "client that pulls after pushing sends, and as pouchdb-server answers)")
    p.add_argument("--page", type=int, default=1000, help="syncPull limit")
    p.add_argument("--repeats", type=int, default=200, help="empty incremental pulls")
    p.add_argument("--workers", default="1",
                   help="uvicorn worker counts, one round each, e.g. 1,2 (default 1)")
    p.add_argument("--pg-url", default=PG_URL, help="reset (DROP SCHEMA public) and used")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workdir", default=None,
                   help="keep the SQLite file and server logs here (default: a temp dir)")
    p.add_argument("--py-spy-dir", default=None,
                   help="record the server with py-spy during push and pull (collapsed stacks)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for workers in (int(w) for w in args.workers.split(",")):
            rnd = Round(args.db, workers)
            try:
                run_round(args, rnd, workdir)
            except Exception as e:  # report what broke; a benchmark still exits 0
                traceback.print_exc()
                rnd.failures.append(f"round aborted: {type(e).__name__}: {e}")
            report(args, rnd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
