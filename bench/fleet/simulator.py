"""The fleet simulator: a working day for N reps against a real uvicorn server.

Phases (each one timed):

1. **seed**: a fresh database with the fleet's world (`bench.fleet.dataset`);
2. **server**: a real uvicorn subprocess (`bench.fleet.server.Supervisor`);
3. **morning**: every device signs in and takes its initial sync (through the faults);
4. **offline morning**: each rep's phone (and tablet) works offline;
5. **mid-day**: managers edit some of the same records on their tablets and sync; the
   back office (GraphQL API) withdraws a product, puts accounts on hold, confirms open
   orders, corrects contacts and addresses, reassigns accounts and hands leads over;
6. **lunch**: some phones sync (every rep that receives a lead);
7. **offline afternoon**: more offline work; the reps who received a lead change it,
   while its previous owner (still offline) has changed it too;
8. **storm**: every device syncs at once through the fault layer; the server is
   SIGKILLed and restarted part-way; the back office reassigns more accounts and the
   managers edit again during it;
9. **settle**: faults off, everyone syncs until a round pushes nothing;
10. **verify**: `bench.fleet.verifier`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import random
import resource
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.fleet.dataset import JWT_SECRET, World, seed_world
from bench.fleet.faults import KINDS, FaultConfig, FaultTransport, ResultTap
from bench.fleet.managers import DECK, ManagerLoad
from bench.fleet.server import Supervisor, postgres_cpu
from bench.fleet.verifier import Verifier, VerifyReport
from bench.fleet.workload import (
    BackOffice,
    DayPlan,
    RepDay,
    SimDevice,
    make_plan,
    manager_edits,
    sub_rng,
)
from client import (
    AuthenticationRequired,
    Device,
    LocalStore,
    NetworkError,
    ProtocolError,
    RequestRefused,
    RetryPolicy,
    Transport,
)

PG_URL = "postgresql://postgres@127.0.0.1:5432/fleet_bench"
#: Whole-request refusals that are the server failing (masked errors), not the request
#: being wrong: reported and retried (the server marks them retryable since c009328;
#: see docs/fleet-simulator.md, server bug 3).
SERVER_FAILURES = frozenset({"INTERNAL"})


@dataclass
class FleetConfig:
    db: str = "sqlite"  # sqlite | postgres
    #: Use this database (it is emptied and migrated); default: a file in the workdir
    #: (SQLite) or PG_URL (PostgreSQL).
    database_url: str | None = None
    reps: int = 200
    seed: int = 1
    faults: FaultConfig = field(default_factory=FaultConfig.default_on)
    #: SIGKILL + restart of the server during the storm, at these fractions of the
    #: storm's syncs completed.
    kills: int = 1
    kill_at: float = 0.35
    workers: int = 1
    tablet_share: float = 0.15
    lunch_share: float = 0.10
    max_connections: int = 64
    #: Devices syncing at once in the storm (0: all of them).
    storm_parallel: int = 0
    workdir: Path | None = None
    keep: bool = False
    server_env: dict[str, str] = field(default_factory=dict)
    verify_parallel: int = 8
    #: Managers running explorer queries (GraphQL analytics) throughout the storm, with
    #: `manager_think` seconds of think time on average between two requests of one
    #: manager (bench.fleet.managers; the morning-peak load test).
    managers_querying: int = 0
    manager_think: float = 1.0
    #: Called after the final sync, before the verifier (tests use it to tamper with
    #: the server or a device and check that the verifier notices).
    before_verify: Callable[[TamperContext], Awaitable[None]] | None = None
    log: Callable[[str], None] = print


@dataclass
class TamperContext:
    database_url: str
    server_url: str
    world: World
    devices: list[SimDevice]


@dataclass
class PhaseStats:
    name: str
    started: float = 0.0
    ended: float = 0.0
    syncs: int = 0  # successful sync() calls
    attempts_failed: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # successful sync() calls
    e2e: list[float] = field(default_factory=list)  # first attempt → success, per device
    pushed: int = 0
    pulled: int = 0
    push_requests: int = 0
    gave_up: list[str] = field(default_factory=list)
    #: CPU seconds used during the phase: the fleet process, the server, PostgreSQL
    cpu: dict[str, float] = field(default_factory=dict)
    #: set whenever a sync succeeds or the phase ends (for hooks waiting on progress)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, syncs: float) -> bool:
        """Wait until `syncs` syncs succeeded; False if the phase ended first."""
        while self.syncs < syncs and not self.ended:
            self.progress.clear()
            await self.progress.wait()
        return self.syncs >= syncs

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.started)


@dataclass
class FleetResult:
    config: FleetConfig
    world: World
    plan: DayPlan
    phases: dict[str, PhaseStats]
    timings: dict[str, float]
    faults: FaultTransport
    supervisor: Supervisor
    devices: list[SimDevice]
    backoffice: BackOffice
    verify: VerifyReport | None
    transport_retries: int
    relogins: int
    load: dict[str, tuple[float, float, float]]
    server_cpu: float
    errors: list[str] = field(default_factory=list)
    #: syncs refused with a masked server error (code INTERNAL), then retried
    server_failures: list[str] = field(default_factory=list)
    #: the managers' queries during the storm (None: no manager queried)
    manager_load: ManagerLoad | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and self.verify is not None and self.verify.ok


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


class Fleet:
    def __init__(self, config: FleetConfig) -> None:
        self.c = config
        self.log = config.log
        self.phases: dict[str, PhaseStats] = {}
        self.timings: dict[str, float] = {}
        self.errors: list[str] = []
        self.server_failures: list[str] = []
        self.sup: Supervisor | None = None
        self._jitters: dict[str, random.Random] = {}
        self.pg_database: str | None = None
        self.load: dict[str, tuple[float, float, float]] = {}
        self.server_cpu = 0.0

    # -- setup -----------------------------------------------------------------------------

    def _database_url(self, workdir: Path) -> str:
        if self.c.database_url:
            return self.c.database_url
        if self.c.db == "sqlite":
            return f"sqlite:///{workdir / 'server.db'}"
        return PG_URL

    def _device(self, name: str, person: Any, kind: str, http: httpx.AsyncClient, url: str,
                folder: Path) -> SimDevice:
        rng = sub_rng(self.c.seed, "device", name)
        transport = Transport(url, http=http,
                              retry=RetryPolicy(max_attempts=8, base_delay=0.2, max_delay=4.0,
                                                max_elapsed=90.0),
                              rng=random.Random(rng.random()), user_agent=f"fleet/{name}")
        store = LocalStore(folder / f"{name}.db", synchronous="NORMAL")
        device = Device(store, url, transport=transport, batch_size=100)
        return SimDevice(name, person, kind, device, rng)

    def _jitter(self, sd: SimDevice) -> random.Random:
        """Backoff randomness, apart from the device's workload generator (so retries,
        which depend on timing, do not change what the device does next)."""
        rng = self._jitters.get(sd.name)
        if rng is None:
            rng = self._jitters[sd.name] = sub_rng(self.c.seed, "jitter", sd.name)
        return rng

    def _cpu(self) -> dict[str, float]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out = {"fleet": ru.ru_utime + ru.ru_stime,
               "server": self.sup.total_cpu() if self.sup else 0.0}
        if self.pg_database:
            out["postgres"] = postgres_cpu(self.pg_database)
        return out

    # -- syncing ---------------------------------------------------------------------------

    async def sync(self, sd: SimDevice, phase: PhaseStats, max_attempts: int = 40) -> bool:
        first = time.monotonic()
        for attempt in range(max_attempts):
            t0 = time.monotonic()
            try:
                report = await sd.device.sync()
            except NetworkError as e:
                phase.attempts_failed[f"NetworkError ({'HTTP ' + str(e.status) if e.status else 'no answer'})"] += 1
            except AuthenticationRequired as e:
                # e.g. a refresh whose answer was lost: TOKEN_REUSED. Sign in again; the
                # store and the outbox are kept.
                phase.attempts_failed[f"AuthenticationRequired ({e.code})"] += 1
                try:
                    await sd.login()
                    sd.relogins += 1
                except Exception as le:
                    phase.attempts_failed[f"re-login failed: {type(le).__name__}"] += 1
            except RequestRefused as e:
                phase.attempts_failed[f"RequestRefused {e.code}"] += 1
                if e.code in SERVER_FAILURES:
                    # A server failure the reference client does not retry (it has a code):
                    # an app shows it and syncs again later. Reported, then retried.
                    self.server_failures.append(f"{phase.name}: {sd.name}: {e}")
                elif not e.retryable:
                    phase.gave_up.append(f"{sd.name}: refused: {e}")
                    self.errors.append(f"{sd.name}: sync refused: {e}")
                    return False
            except ProtocolError as e:
                phase.attempts_failed["ProtocolError"] += 1
                phase.gave_up.append(f"{sd.name}: {e}")
                self.errors.append(f"{sd.name}: protocol error: {e}")
                return False
            else:
                phase.syncs += 1
                phase.latencies.append(time.monotonic() - t0)
                phase.e2e.append(time.monotonic() - first)
                phase.pushed += report.pushed
                phase.pulled += report.pulled
                phase.push_requests += report.push_requests
                phase.progress.set()
                return True
            await asyncio.sleep(self._jitter(sd).uniform(0, min(10.0, 0.5 * 2 ** attempt)))
        phase.gave_up.append(f"{sd.name}: gave up after {max_attempts} attempts")
        self.errors.append(f"{sd.name}: could not sync in {phase.name} after {max_attempts} attempts")
        return False

    async def run_phase(self, name: str, items: Sequence[SimDevice],
                        parallel: int = 0,
                        hooks: Sequence[Callable[[PhaseStats], Awaitable[None]]] = (),
                        before: Callable[[SimDevice], Awaitable[None]] | None = None) -> PhaseStats:
        phase = self.phases[name] = PhaseStats(name)
        gate = asyncio.Semaphore(parallel or len(items) or 1)
        phase.started = time.monotonic()
        cpu0 = self._cpu()

        async def one(sd: SimDevice) -> None:
            async with gate:
                if before is not None:
                    await before(sd)
                await self.sync(sd, phase)

        hook_tasks = [asyncio.ensure_future(h(phase)) for h in hooks]
        await asyncio.gather(*(one(sd) for sd in items))
        phase.ended = time.monotonic()
        phase.progress.set()
        cpu1 = self._cpu()
        phase.cpu = {k: max(0.0, cpu1[k] - cpu0[k]) for k in cpu0}
        for t in hook_tasks:
            await t
        self.log(f"  {name}: {phase.syncs} syncs in {phase.seconds:.1f}s, pushed {phase.pushed}, "
                 f"pulled {phase.pulled}, failed attempts {sum(phase.attempts_failed.values())}")
        return phase

    # -- the day ---------------------------------------------------------------------------

    async def run(self) -> FleetResult:
        c = self.c
        wall0 = time.monotonic()
        workdir = c.workdir or Path(tempfile.mkdtemp(prefix="fleet-"))
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "devices").mkdir(exist_ok=True)
        url = self._database_url(workdir)
        self.load["start"] = os.getloadavg()
        self.log(f"fleet: {c.reps} reps on {url.split('@')[-1] if '@' in url else url} "
                 f"(seed {c.seed}, faults {c.faults.describe()}, kills {c.kills})")
        t = time.monotonic()
        world = await seed_world(url, c.reps, c.seed)
        self.timings["seed"] = time.monotonic() - t
        plan = make_plan(world, c.seed, c.tablet_share, c.lunch_share)
        self.log(f"  seeded in {self.timings['seed']:.1f}s: {len(world.reps)} reps, "
                 f"{len(world.managers)} managers, {len(plan.tablets)} tablets")
        run_started = datetime.now(UTC)
        env = {"FIELDSYNC_ACCESS_TOKEN_MINUTES": "120", **c.server_env}
        sup = self.sup = Supervisor(url, JWT_SECRET, workdir / "server.log", workers=c.workers,
                                    extra_env=env)
        if not url.startswith("sqlite"):
            self.pg_database = url.rsplit("/", 1)[1].split("?")[0]
        self.timings["server start"] = await sup.start()
        tap = ResultTap()
        inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(
            max_connections=c.max_connections, max_keepalive_connections=c.max_connections))
        faults = FaultTransport(inner, c.faults, c.seed, tap, max_in_flight=c.max_connections)
        http = httpx.AsyncClient(transport=faults, timeout=httpx.Timeout(
            120.0, connect=10.0, pool=None))
        bo_http = httpx.AsyncClient(timeout=60)
        devices: list[SimDevice] = []
        backoffice = BackOffice(sup.url, world.admin)
        verify: VerifyReport | None = None
        mload = (ManagerLoad(sup.url, world, c.managers_querying, c.seed, c.manager_think, self.log)
                 if c.managers_querying > 0 else None)
        try:
            folder = workdir / "devices"
            phones, tablets, managers = [], [], []
            for r in world.reps:
                phones.append(self._device(f"{r.person.name}-phone", r.person, "phone", http,
                                           sup.url, folder))
                if r.person.name in plan.tablets:
                    tablets.append(self._device(f"{r.person.name}-tablet", r.person, "tablet", http,
                                                sup.url, folder))
            for m in world.managers:
                managers.append(self._device(f"{m.name}-tablet", m, "manager", http, sup.url, folder))
            devices = phones + tablets + managers
            by_name = {d.name: d for d in devices}
            days = {d.name: RepDay(d, world.rep(d.person.name), plan, str(world.doomed_product))
                    for d in phones + tablets}

            # 3. morning: sign in + initial sync
            async def login(sd: SimDevice) -> None:
                for attempt in range(20):
                    try:
                        await sd.login()
                        return
                    except (NetworkError, RequestRefused):
                        await asyncio.sleep(self._jitter(sd).uniform(0, min(5, 0.3 * 2 ** attempt)))
                raise RuntimeError(f"{sd.name} could not sign in")
            await self.run_phase("morning", devices, before=login)

            # 4. offline morning
            t = time.monotonic()
            races_from = {a: lead for lead, a, _b in plan.lead_race}
            for d in phones + tablets:
                days[d.name].work(0)
                if d.kind == "phone" and d.person.name in races_from:
                    days[d.name].lead_change(races_from[d.person.name])
            self.timings["offline morning"] = time.monotonic() - t

            # 5. mid-day: managers (online) and the back office
            await backoffice.login(bo_http)
            t = time.monotonic()
            for mgr in managers:
                manager_edits(mgr, plan, world)
            await self.run_phase("mid-day managers", managers)
            await backoffice.update(bo_http, "product", str(world.doomed_product), {"active": False})
            for acc in plan.on_hold:
                await backoffice.update(bo_http, "account", acc, {"status": "ON_HOLD"})
            for oid in plan.confirm:
                await backoffice.update(bo_http, "order", oid, {"status": "CONFIRMED"})
            for cid in plan.bo_contacts:
                await backoffice.update(bo_http, "contact", cid, {"email": f"verified.{cid[:6]}@shop.example"})
            for acc in plan.bo_addresses:
                await backoffice.update(bo_http, "account", acc, {"street": "1 Back Office Way",
                                                                   "postalCode": "1000", "city": "Ljubljana"})
            for acc, _a, b in plan.reassign:
                await backoffice.update(bo_http, "account", acc, {"ownerId": str(world.rep(b).person.user_id)})
            for lead, _a, b in plan.lead_race:
                await backoffice.update(bo_http, "lead", lead, {"ownerId": str(world.rep(b).person.user_id)})
            self.timings["mid-day edits"] = time.monotonic() - t

            # 6. lunch
            await self.run_phase("lunch", [by_name[f"{r}-phone"] for r in sorted(plan.lunch)])

            # 7. offline afternoon
            t = time.monotonic()
            races_to = {b: lead for lead, _a, b in plan.lead_race}
            for d in phones + tablets:
                days[d.name].work(1)
                if d.kind == "phone" and d.person.name in races_to:
                    days[d.name].lead_change(races_to[d.person.name], "DISQUALIFIED")
                if d.kind == "phone" and d.person.name in races_from:
                    days[d.name].lead_change(races_from[d.person.name])
            self.timings["offline afternoon"] = time.monotonic() - t
            pending = sum(d.store.outbox_size() for d in devices)
            self.log(f"  offline work: {pending} mutations waiting in {len(devices)} outboxes")

            # 8. storm
            total = len(devices)

            async def killer(phase: PhaseStats) -> None:
                for k in range(c.kills):
                    target = c.kill_at + k * (1 - c.kill_at) / max(1, c.kills) * 0.6
                    if not await phase.until(target * total):
                        self.errors.append(f"the storm ended before kill #{k + 1} "
                                           f"(at {target:.0%} of the syncs)")
                        return
                    took = await sup.restart_after_kill()
                    self.log(f"  storm: SIGKILL #{k + 1} at {phase.syncs}/{total} syncs; "
                             f"back up in {took:.1f}s")

            async def storm_events(phase: PhaseStats) -> None:
                await phase.until(0.2 * total)
                for acc, _a, b in plan.storm_reassign:
                    await backoffice.update(bo_http, "account", acc,
                                            {"ownerId": str(world.rep(b).person.user_id)})
                await phase.until(0.5 * total)
                for mgr in managers:
                    if manager_edits(mgr, plan, world, intensity=0.5):
                        await self.sync(mgr, phase)

            async def manager_queries(phase: PhaseStats) -> None:
                if mload is not None:
                    await mload.run(lambda: bool(phase.ended))

            storm_order = devices[:]
            sub_rng(c.seed, "storm").shuffle(storm_order)
            for d in storm_order:
                d.device.transport.retries = 0
            await self.run_phase("storm", storm_order, parallel=c.storm_parallel,
                                 hooks=[killer, storm_events, manager_queries])
            if mload is not None and mload.unexpected:
                self.errors.append(f"{mload.unexpected} manager queries failed unexpectedly "
                                   "(wrong answers or non-retryable errors)")

            # 9. settle: no faults, until a round pushes nothing
            faults.enabled = False
            for round_no in range(6):
                phase = await self.run_phase(f"settle {round_no + 1}", devices, parallel=64)
                if phase.pushed == 0 and not phase.gave_up:
                    break
            else:
                self.errors.append("the fleet did not settle in 6 rounds")

            # 10. verify
            if c.before_verify is not None:
                await c.before_verify(TamperContext(url, sup.url, world, devices))
            self.log("  verifying …")
            fleet_users = [r.person.user_id for r in world.reps] + [m.user_id for m in world.managers]
            t = time.monotonic()
            verify = await Verifier(url, sup.url, devices, tap, run_started, fleet_users,
                                    c.verify_parallel).run()
            self.timings["verify"] = time.monotonic() - t
        finally:
            self.timings["total (wall)"] = time.monotonic() - wall0
            self.server_cpu = sup.total_cpu()
            self.load["end"] = os.getloadavg()
            await http.aclose()
            await bo_http.aclose()
            for d in devices:
                d.store.close()
            sup.stop()
            if not c.keep and c.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
        retries = sum(d.device.transport.retries for d in devices)
        return FleetResult(c, world, plan, self.phases, self.timings, faults, sup, devices,
                           backoffice, verify, retries, sum(d.relogins for d in devices),
                           self.load, self.server_cpu, self.errors, self.server_failures, mload)


async def simulate(config: FleetConfig) -> FleetResult:
    return await Fleet(config).run()


# -- the summary -----------------------------------------------------------------------

def _table(rows: Sequence[Sequence[object]], head: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line.format(*head), sep, *(line.format(*map(str, r)) for r in rows)])


def summary(res: FleetResult, max_violations: int = 10) -> str:
    c = res.config
    out: list[str] = []
    storm = res.phases.get("storm")
    n_mut = sum(len(d.ledger) for d in res.devices)
    out.append(f"\n== fleet: {c.reps} reps, {len(res.devices)} devices "
               f"({sum(d.kind == 'tablet' for d in res.devices)} tablets, "
               f"{sum(d.kind == 'manager' for d in res.devices)} managers), {c.db}, seed {c.seed}, "
               f"server workers {c.workers} ==")
    rows: list[tuple[object, ...]] = []
    for p in res.phases.values():
        rows.append((p.name, p.syncs, f"{p.seconds:.1f}",
                     f"{p.syncs / p.seconds:.1f}" if p.seconds else "-",
                     f"{pct(p.latencies, .5) * 1000:.0f}", f"{pct(p.latencies, .99) * 1000:.0f}",
                     f"{pct(p.e2e, .99) * 1000:.0f}",
                     p.pushed, p.pulled, sum(p.attempts_failed.values()), len(p.gave_up),
                     "/".join(f"{p.cpu[k]:.0f}" for k in ("fleet", "server", "postgres") if k in p.cpu)))
    cpu_head = "CPU s fleet/server" + ("/pg" if any("postgres" in p.cpu for p in res.phases.values()) else "")
    out.append(_table(rows, ("phase", "syncs", "s", "syncs/s", "p50 ms", "p99 ms", "p99 e2e ms",
                             "pushed", "pulled", "failed tries", "gave up", cpu_head)))
    if storm and storm.seconds:
        out.append(f"\nstorm: {storm.syncs} syncs in {storm.seconds:.1f}s = {storm.syncs / storm.seconds:.1f} "
                   f"syncs/s, {storm.pushed / storm.seconds:.0f} mutations/s; sync latency p50 "
                   f"{pct(storm.latencies, .5) * 1000:.0f} ms, p99 {pct(storm.latencies, .99) * 1000:.0f} ms "
                   f"(per device first try → done: p50 {pct(storm.e2e, .5) * 1000:.0f} ms, p99 "
                   f"{pct(storm.e2e, .99) * 1000:.0f} ms)")
    if res.manager_load is not None:
        out.append(_manager_summary(res.manager_load, max_violations))
    out.append("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in res.timings.items()))
    out.append(f"server: {res.supervisor.starts} starts, {res.supervisor.kills} SIGKILL(s), restart took "
               + (", ".join(f"{x:.1f}s" for x in res.supervisor.downtime) or "-")
               + f"; server CPU {res.server_cpu:.0f}s")
    la = res.load
    out.append(f"load average (1/5/15 min): start {la.get('start', (0, 0, 0))[0]:.2f}/"
               f"{la.get('start', (0, 0, 0))[1]:.2f}/{la.get('start', (0, 0, 0))[2]:.2f}, end "
               f"{la.get('end', (0, 0, 0))[0]:.2f}/{la.get('end', (0, 0, 0))[1]:.2f}/"
               f"{la.get('end', (0, 0, 0))[2]:.2f} on {os.cpu_count()} cores")
    f = res.faults.stats
    rows = [(k, f.injected.get(k, 0), ", ".join(f"{op} {n}" for (kk, op), n in sorted(f.by_op.items())
                                                if kk == k)) for k in KINDS]
    out.append("\n" + _table(rows, ("fault injected", "count", "by operation")))
    out.append("HTTP requests: " + ", ".join(f"{op} {n}" for op, n in sorted(f.requests.items()))
               + f"; failed on their own: {dict(f.natural_errors) or 0}")
    lat = res.faults.latencies
    out.append("HTTP request latency (connection wait + server), p50/p99 ms: " + ", ".join(
        f"{op} {pct(v, .5) * 1000:.0f}/{pct(v, .99) * 1000:.0f}" for op, v in sorted(lat.items())))
    fails: Counter[str] = Counter()
    for p in res.phases.values():
        fails.update(p.attempts_failed)
    out.append(f"errors retried: {res.transport_retries} request retries in the client transport "
               f"(storm), {sum(fails.values())} sync() calls failed and were retried "
               f"({', '.join(f'{k} {v}' for k, v in fails.most_common()) or 'none'}), "
               f"{res.relogins} re-logins")
    bo = res.backoffice.outcomes
    out.append("back office: " + ", ".join(f"{k} {v}" for k, v in sorted(bo.items())))
    plan = res.plan
    out.append(f"plan: {len(plan.reassign)} accounts reassigned mid-day + {len(plan.storm_reassign)} "
               f"during the storm, {len(plan.lead_race)} lead races, {len(plan.on_hold)} accounts on "
               f"hold, {len(plan.confirm)} orders confirmed, {len(plan.lunch)} lunch syncs")
    v = res.verify
    if v is not None:
        by_status: Counter[str] = Counter()
        by_code: Counter[str] = Counter()
        for (_entity, _op, status, code), n in v.outcomes.items():
            by_status[status] += n
            if code:
                by_code[f"{status} {code}"] += n
        out.append(f"\nmutations: {n_mut} made; by status: "
                   + ", ".join(f"{s} {by_status.get(s, 0)}" for s in ("APPLIED", "MERGED", "CONFLICT", "REJECTED")))
        out.append("  with codes: " + ", ".join(f"{k} {n}" for k, n in by_code.most_common()))
        ent: Counter[tuple[str, str]] = Counter()
        for (entity, op, status, _code), n in v.outcomes.items():
            ent[(f"{entity} {op}", status)] += n
        kinds = sorted({k for k, _ in ent})
        rows = [(k, *(ent.get((k, s), 0) for s in ("APPLIED", "MERGED", "CONFLICT", "REJECTED")))
                for k in kinds]
        out.append(_table(rows, ("mutation", "APPLIED", "MERGED", "CONFLICT", "REJECTED")))
        checks = v.by_check()
        names = {"a": "every mutation accounted for exactly once",
                 "b": "every device equals the server's view of its scope",
                 "c": "no device holds a record outside its scope",
                 "d": "no order duplicated or vanished"}
        rows = []
        for k in "abcd":
            checked = ", ".join(f"{n} {what.split(': ')[1]}" for what, n in v.checked.items()
                                if what.startswith(k + ":"))
            rows.append((f"({k}) {names[k]}", checked, "PASS" if not checks[k] else f"FAIL ({len(checks[k])})"))
        out.append("\n" + _table(rows, ("verifier", "checked", "result")))
        if v.drafts_kept:
            out.append(f"(b) note: {v.drafts_kept} refused creates are kept on their devices as drafts, "
                       "each matching a stored REJECTED result without data")
        if v.anomalies:
            out.append(f"protocol anomalies (do not fail the run; server bugs to report): "
                       f"{len(v.anomalies)}")
            for viol in v.anomalies[:max_violations]:
                out.append(f"  ANOMALY {viol.kind}: {viol.detail}")
        for k in "abcd":
            for viol in checks[k][:max_violations]:
                out.append(f"  COUNTEREXAMPLE ({k}) {viol.kind}: {viol.detail}")
            if len(checks[k]) > max_violations:
                out.append(f"  … and {len(checks[k]) - max_violations} more ({k}) violations")
    if res.server_failures:
        out.append(f"server failures answered as a non-retryable refusal (retried by the simulator; "
                   f"a server bug to report): {len(res.server_failures)}")
        for e in res.server_failures[:max_violations]:
            out.append(f"  SERVER ERROR: {e}")
    for e in res.errors[:20]:
        out.append(f"  RUN ERROR: {e}")
    out.append("\nRESULT: " + ("PASS" if res.ok else "FAIL"))
    return "\n".join(out)


def _manager_summary(ml: ManagerLoad, max_failures: int) -> str:
    secs = ml.seconds or math.nan
    rows: list[tuple[object, ...]] = []
    lat_all: list[float] = []
    exp_all: Counter[str] = Counter()
    unexp_all: Counter[str] = Counter()
    for kind in DECK:
        st = ml.stats[kind]
        lat_all += st.latencies
        exp_all.update(st.expected)
        unexp_all.update(st.unexpected)
        rows.append((kind, st.ok, f"{st.ok / secs:.2f}", f"{pct(st.latencies, .5) * 1000:.0f}",
                     f"{pct(st.latencies, .99) * 1000:.0f}",
                     f"{max(st.latencies, default=math.nan) * 1000:.0f}",
                     sum(st.expected.values()), sum(st.unexpected.values())))
    n = sum(ml.stats[k].ok for k in DECK)
    rows.append(("all", n, f"{n / secs:.2f}", f"{pct(lat_all, .5) * 1000:.0f}",
                 f"{pct(lat_all, .99) * 1000:.0f}", f"{max(lat_all, default=math.nan) * 1000:.0f}",
                 sum(exp_all.values()), sum(unexp_all.values())))
    out = [f"\nmanager queries during the storm: {len(ml.managers)} managers "
           f"(think time {ml.think:.1f}s on average), {ml.seconds:.1f}s, {ml.logins} logins",
           _table(rows, ("query", "answered", "q/s", "p50 ms", "p99 ms", "max ms",
                         "errors (expected)", "errors (unexpected)"))]
    out.append("  expected errors (server down or restarting, retryable): "
               + (", ".join(f"{k} {v}" for k, v in exp_all.most_common()) or "none"))
    out.append("  unexpected errors: " + (", ".join(f"{k} {v}" for k, v in unexp_all.most_common())
                                         or "none"))
    for f in ml.failures[:max_failures]:
        out.append(f"  MANAGER QUERY FAILED: {f}")
    return "\n".join(out)


def to_json(res: FleetResult) -> dict[str, Any]:
    storm = res.phases.get("storm")
    return {
        "reps": res.config.reps, "db": res.config.db, "seed": res.config.seed,
        "devices": len(res.devices), "ok": res.ok,
        "phases": {k: {"syncs": p.syncs, "seconds": p.seconds, "p50": pct(p.latencies, .5),
                       "p99": pct(p.latencies, .99), "pushed": p.pushed, "pulled": p.pulled, "cpu": p.cpu,
                       "failed_attempts": dict(p.attempts_failed)} for k, p in res.phases.items()},
        "storm_syncs_per_s": storm.syncs / storm.seconds if storm and storm.seconds else None,
        "faults": dict(res.faults.stats.injected), "timings": res.timings,
        "violations": [dataclasses.asdict(v) for v in (res.verify.violations if res.verify else [])],
        "anomalies": [dataclasses.asdict(v) for v in (res.verify.anomalies if res.verify else [])],
        "errors": res.errors, "server_failures": res.server_failures, "load": res.load,
        "cpu": {"server_total": res.server_cpu,
                "fleet_total": resource.getrusage(resource.RUSAGE_SELF).ru_utime
                + resource.getrusage(resource.RUSAGE_SELF).ru_stime},
        "mutations": sum(len(d.ledger) for d in res.devices),
        "outcomes": None if res.verify is None else [
            {"entity": e, "op": o, "status": s, "code": code, "count": n}
            for (e, o, s, code), n in sorted(res.verify.outcomes.items())],
        "checked": None if res.verify is None else dict(res.verify.checked),
        "transport_retries": res.transport_retries,
        "natural_errors": dict(res.faults.stats.natural_errors),
        "manager_queries": None if res.manager_load is None else {
            "managers": len(res.manager_load.managers), "seconds": res.manager_load.seconds,
            "think": res.manager_load.think, "failures": res.manager_load.failures,
            "queries": {k: {"ok": st.ok, "per_s": st.ok / res.manager_load.seconds
                            if res.manager_load.seconds else None,
                            "p50": pct(st.latencies, .5), "p99": pct(st.latencies, .99),
                            "max": max(st.latencies, default=None),
                            "expected_errors": dict(st.expected),
                            "unexpected_errors": dict(st.unexpected)}
                        for k, st in res.manager_load.stats.items()}},
    }
