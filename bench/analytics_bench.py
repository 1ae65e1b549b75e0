"""Manager analytics at the large demo size, on SQLite and PostgreSQL.

    python -m bench.analytics_bench --db sqlite|postgres [--runs 20] [--size large]

1. A scratch database: SQLite `/tmp/fieldsync-analytics-bench/<size>.db`, PostgreSQL
   `fieldsync_analytics_bench` (created when missing; never the `test` database). The
   demo data set is seeded once (`seed_demo`, seed 42, today = BENCH_TODAY; about
   5-15 minutes for `large`) and reused by later runs. PostgreSQL gets an ANALYZE
   after seeding, as autovacuum would do, and `random_page_cost = 1.1` (SSD; the
   default 4 makes it scan every order line for a manager's tenth of them); SQLite runs
   without planner statistics, as fieldsync's migrations leave it. Then the monthly
   rollups are brought up to date, as `fieldsync jobs daily` does each night (built the
   first time, timed). `--name` picks another scratch database; `--seed-only` stops here;
   `--busy N` then changes N orders of the last three days, as a working day after the
   nightly job would (those days are read live).
2. The real ASGI app in-process (httpx ASGITransport): each query goes through auth,
   GraphQL and the scope rule exactly as from the explorer.
3. Each query as manager1 (a team of 5 reps, ~10% of the data) and as the admin (all of
   it): one cold call, then `--runs` timed calls; prints p50/p95 in ms. customer360
   and recommendations read company-wide models kept per process (schema.analytics.models):
   their cold call includes fitting them, and "model fit" shows that cost alone. A
   query slower than a second gets fewer runs (at least 5; "x5" in the output).

It is a benchmark, not a test: it always exits 0 and prints MISS next to a p95 over
BUDGET_MS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from schema.analytics.rollup import refresh_rollups
from schema.seed import seed_demo
from server.cli import db_upgrade
from server.db import Database, create_engine
from server.settings import Settings

BENCH_TODAY = date(2026, 11, 27)
BUDGET_MS = 1000.0
QUERY_SECONDS = 60.0
#: PostgreSQL's default (4) is for spinning disks; 1.1 is the usual SSD setting.
RANDOM_PAGE_COST = 1.1
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "fieldsync_analytics_bench"
WORKDIR = Path("/tmp/fieldsync-analytics-bench")
JWT_SECRET = "analytics-bench-" + "x" * 32

YEAR = {"start": (BENCH_TODAY - timedelta(days=364)).isoformat(), "end": BENCH_TODAY.isoformat()}
LAST_FULL_YEAR = {"start": "2025-11-01", "end": "2026-10-31"}
QUERIES: dict[str, tuple[str, dict[str, Any]]] = {
    "customer360": ("""query($a: ID!, $d: Date!) { customer360(accountId: $a, asOf: $d) {
      account { name } balanceCents overdueCents creditAvailableCents
      openInvoices { number dueDate amountOpenCents } recentOrders { orderDate status }
      purchases { revenue12mCents orderCount12m } topProducts { product { name } orderCount }
      nextPurchases { purchase { product { name } } dueInDays }
      recommendations { product { name } because { name } }
      segment { score segment } openCases { headline } visitNotes { body }
      openTasks { title } upcomingBirthdays { contact { firstName } inDays } } }""", {}),
    "topCustomers": ("""query($p: PeriodInput) { topCustomers(period: $p, limit: 20) {
      customerCount top10PctRevenueShare customers { rank revenueCents account { name } } } }""",
                     {"p": YEAR}),
    "topCustomers(MARGIN)": ("""query($p: PeriodInput) { topCustomers(period: $p, by: MARGIN) {
      customers { rank marginCents account { name } } } }""", {"p": YEAR}),
    "customerSegments": ("""query($d: Date!) { customerSegments(asOf: $d) {
      segments { segment accountCount revenueShare }
      members(segment: AT_RISK, first: 20) { totalCount edges { node { score account { name } } } }
      } }""", {}),
    "basketAnalysis(90d)": ("""query($p: PeriodInput) { basketAnalysis(period: $p, limit: 20) {
      orderCount rules { support confidence lift antecedent { name } consequent { name } } } }""",
                            {"p": {"start": "2026-08-30", "end": BENCH_TODAY.isoformat()}}),
    "basketAnalysis(365d)": ("""query($p: PeriodInput) { basketAnalysis(period: $p, limit: 20) {
      orderCount rules { lift antecedent { name } consequent { name } } } }""", {"p": YEAR}),
    "recommendations": ("""query($a: ID!, $d: Date!) { recommendations(accountId: $a, asOf: $d) {
      product { name } because { name } rule { lift confidence } } }""", {}),
    "salesVolume(TERRITORY,MONTH)": ("""query($p: PeriodInput) {
      salesVolume(groupBy: [TERRITORY, MONTH], period: $p) { groupCount
        totals { revenueCents marginCents } rows { month territory { name }
        current { revenueCents quantity orderCount marginCents } previous { revenueCents } } } }""",
                                     {"p": LAST_FULL_YEAR}),
    "salesVolume(CATEGORY)": ("""query($p: PeriodInput) { salesVolume(groupBy: [CATEGORY],
      period: $p, compareTo: PREVIOUS_YEAR) { rows { category revenueChange
      current { revenueCents quantity } } } }""", {"p": LAST_FULL_YEAR}),
    "salesVolume.forecast": ("""query($p: PeriodInput) { salesVolume(period: $p) {
      forecast(months: 3) { method forecast { month value } holdout { mape } } } }""",
                             {"p": LAST_FULL_YEAR}),
    "leadFunnel": ("""query($p: PeriodInput) { leadFunnel(period: $p) {
      total { leads converted conversionRate } stages { stage reached medianDaysInStage }
      bySource { source counts { leads converted } } byOwner { owner { fullName } counts { leads } }
      medianDaysToConvert } }""", {"p": YEAR}),
    "leadRouting": ("""{ leadRouting { rule pending { lead { company } rep { email } } } }""", {}),
}


def database_url(kind: str, size: str, name: str | None = None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{WORKDIR / f'{name or size}.db'}"
    name = name or (PG_DB if size == "large" else f"{PG_DB}_{size}")
    engine = sa.create_engine(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def ensure_seeded(url: str, size: str) -> dict[str, Any]:
    stem = Path(url.rsplit("/", 1)[1]).stem
    patterns = WORKDIR / f"{stem}-{'pg' if url.startswith('postgresql') else 'sqlite'}.json"
    settings = Settings(database_url=url)
    db_upgrade(settings)
    db = Database(create_engine(settings))
    try:
        async with db.read() as s:
            users = (await s.execute(sa.text("SELECT count(*) FROM user_account"))).scalar_one()
        if not users:
            started = time.perf_counter()
            await seed_demo(db, size, 42, patterns_path=patterns, today=BENCH_TODAY,
                            progress=False)
            print(f"seeded {size} in {time.perf_counter() - started:.0f} s", flush=True)
            if db.dialect == "postgresql":
                async with db.engine.connect() as conn:
                    await (await conn.execution_options(isolation_level="AUTOCOMMIT")
                           ).execute(sa.text("ANALYZE"))
        # What `fieldsync jobs daily` does each night for the analytics: bring the monthly
        # rollups up to date (a full build the first time, nothing when nothing changed).
        started = time.perf_counter()
        async with db.write() as s:
            report = await refresh_rollups(s, BENCH_TODAY)
        print(f"{report} in {time.perf_counter() - started:.1f} s", flush=True)
        if report.rebuilt and db.dialect == "postgresql":
            async with db.engine.connect() as conn:
                await (await conn.execution_options(isolation_level="AUTOCOMMIT")
                       ).execute(sa.text("ANALYZE"))
        if db.dialect == "postgresql":
            # SSD storage, as docs/manager-queries.md#performance recommends.
            async with db.engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                name = url.rsplit("/", 1)[1]
                await auto.execute(sa.text(
                    f'ALTER DATABASE "{name}" SET random_page_cost = {RANDOM_PAGE_COST}'))
    finally:
        await db.dispose()
    return dict(json.loads(patterns.read_text()))


def _app(url: str) -> Any:
    from server.app import create_app

    return create_app(Settings(database_url=url, jwt_secret=JWT_SECRET))


async def _token(app: Any, email: str) -> str:
    from schema.identity.service import user_by_email

    services = app.state.services
    async with services.db.write() as s:
        user = await user_by_email(s, email)
        assert user is not None, email
        return str((await services.tokens.issue(s, user)).access_token)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


async def _time(call: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def make_busy(url: str, orders: int) -> None:
    """A working day after the nightly job: the back office marks `orders` CONFIRMED orders
    of the last three days FULFILLED through the sync write path, so those days are read
    live, not from the rollups (the next run's refresh folds them back in)."""
    from schema.enums import OrderStatus
    from schema.orders.tables import Order
    from schema.registry import registry
    from sync.hlc import HybridClock
    from sync.writer import ChangeSet, RowWrite, flush

    db = Database(create_engine(Settings(database_url=url)))
    try:
        async with db.write() as s:
            rows = (await s.execute(
                sa.select(Order.id, Order.version, Order.scope_key, Order.order_date)
                .where(Order.status == OrderStatus.CONFIRMED,
                       Order.order_date.between(BENCH_TODAY - timedelta(days=2), BENCH_TODAY))
                .order_by(Order.id).limit(orders))).all()
            changes = ChangeSet()
            clock = HybridClock("analytics-bench")
            for order_id, version, key, _ in rows:
                changes.add(RowWrite(registry["order"], order_id, "update",
                                     {"status": OrderStatus.FULFILLED},
                                     {"status": OrderStatus.CONFIRMED}, version + 1, key, None,
                                     clock.now()))
            await flush(s, changes)
        print(f"busy: {len(rows)} orders of {len({r[3] for r in rows})} days changed since "
              "the rollups (read live)", flush=True)
    finally:
        await db.dispose()


async def run(kind: str, size: str, runs: int, name: str | None = None,
              seed_only: bool = False, busy: int = 0,
              ) -> list[tuple[str, str, float, float, float]]:
    url = database_url(kind, size, name)
    patterns = await ensure_seeded(url, size)
    if seed_only:
        return []
    if busy:
        await make_busy(url, busy)
    account = patterns["showcase"]["account_id"]
    app = _app(url)
    rows: list[tuple[str, str, float, float, float]] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bench", timeout=600) as client:
        for who in ("manager1@example.com", "admin@example.com"):
            headers = {"Authorization": f"Bearer {await _token(app, who)}"}
            for name, (query, variables) in QUERIES.items():
                body = {"query": query, "variables": {"a": account,
                                                      "d": BENCH_TODAY.isoformat(), **variables}}

                async def call(body: dict[str, Any] = body,
                               headers: dict[str, str] = headers) -> None:
                    r = await client.post("/graphql", json=body, headers=headers)
                    assert r.status_code == 200 and "errors" not in r.json(), r.text[:500]

                cold = await _time(call)
                # Slow queries get fewer runs (at least 5) so a round stays near a minute.
                n = min(runs, max(5, int(QUERY_SECONDS * 1000 / max(cold, 1.0))))
                times = [await _time(call) for _ in range(n)]
                rows.append((name, f"{who.split('@')[0]} x{n}", cold,
                             statistics.median(times), _pct(times, 95)))
                print(_line(kind, *rows[-1]), flush=True)
        rows.append(("model fit (basket + RFM)", "-", await _model_fit(app), 0.0, 0.0))
        print(_line(kind, *rows[-1]), flush=True)
    await app.state.services.db.dispose()
    return rows


async def _model_fit(app: Any) -> float:
    from schema.analytics import models

    async with app.state.services.db.read() as s:
        models.forget(s)
        started = time.perf_counter()
        await models.basket_model(s, BENCH_TODAY)
        await models.rfm_model(s, BENCH_TODAY)
        return (time.perf_counter() - started) * 1000


def _line(kind: str, name: str, who: str, cold: float, p50: float, p95: float) -> str:
    miss = "  MISS  <<<" if p95 > BUDGET_MS else ""
    return f"{kind:8} {name:30} {who:12} cold {cold:8.0f}  p50 {p50:7.0f}  p95 {p95:7.0f} ms{miss}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--size", default="large")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--name", help="scratch database name (SQLite: file stem); default "
                        f"{PG_DB} / <size>.db. Seeded once, reused by later runs")
    parser.add_argument("--seed-only", action="store_true",
                        help="seed (or migrate) the scratch database and stop")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="after the rollup refresh, change N orders of the last three "
                        "days (a working day: those days are read live)")
    args = parser.parse_args()
    WORKDIR.mkdir(parents=True, exist_ok=True)
    print(f"analytics bench: {args.db}, {args.size}, {args.runs} runs per query "
          f"(budget p95 < {BUDGET_MS:.0f} ms)", flush=True)
    asyncio.run(run(args.db, args.size, args.runs, args.name, args.seed_only, args.busy))
    sys.exit(0)


if __name__ == "__main__":
    main()
