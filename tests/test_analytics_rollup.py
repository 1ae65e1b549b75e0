"""Monthly sales rollups: known rows, the same answers as the live orders (also after
orders change), idempotent refresh, and the scope rule on rollup-backed answers."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from schema.analytics.baskets import count_baskets, count_baskets_rolled, transactions
from schema.analytics.common import Period, Scope
from schema.analytics.customers import top_customers
from schema.analytics.rfm import RfmWindow, scored
from schema.analytics.rollup import RollupState, refresh_rollups, rollup_state
from schema.analytics.tables import (
    BasketPairMonthly,
    SalesCategoryMonthly,
    SalesCategoryTotalMonthly,
    SalesFactMonthly,
    SalesOrderMonthly,
    SalesProductTotalMonthly,
)
from schema.analytics.volume import (
    Dimension,
    SalesFilter,
    Wanted,
    aggregate,
    cube_for,
    sales_volume,
)
from schema.enums import OrderStatus, Role
from schema.jobs.daily import run_daily
from schema.registry import registry
from schema.scope import Principal
from server.db import Database
from sync.hlc import HybridClock
from sync.model import table_of
from sync.tables import PUBLIC_KEY
from sync.writer import ChangeSet, RowWrite, flush
from tests.conftest import World
from tests.test_analytics_data import Line, Sale, add_sales, as_user

__all__ = ["as_user"]

TODAY = date(2026, 6, 15)
SPRING = Period(date(2026, 3, 1), date(2026, 5, 31))
#: Partial months at both edges, whole April and May in between. The edges hold every
#: sale of their month (the first on 25 March, the last on 3 June); NARROW's do not.
ODD = Period(date(2026, 3, 20), date(2026, 6, 10))
NARROW = Period(date(2026, 3, 26), date(2026, 6, 2))
VOLUME = """query($g: [SalesDimension!], $p: PeriodInput) {
  salesVolume(groupBy: $g, period: $p, compareTo: NONE) {
    totals { revenueCents quantity orderCount customerCount }
    rows { month category current { revenueCents orderCount customerCount } } } }"""
TOP = """query($p: PeriodInput) { topCustomers(period: $p) { customerCount
  customers { account { name } revenueCents orderCount } } }"""


@pytest.fixture
async def sales(db: Database, world: World) -> dict[str, uuid.UUID]:
    """March to June, three teams' accounts; one order with two cola lines and chips, a
    cancelled one, one in June (today's month)."""
    u, a = world.users, world.accounts
    cola, chips = world.products["cola"], world.products["chips"]
    rows = [
        Sale(a["rep1a"], u["rep1"], date(2026, 3, 25), [Line(cola, 1, 1000, 600)]),
        Sale(a["rep1a"], u["rep1"], date(2026, 4, 2), [Line(cola, 2, 1000, 600),
                                                       Line(chips, 4, 250, 100),
                                                       Line(cola, 1, 900, 600)]),
        Sale(a["rep1a"], u["rep2"], date(2026, 4, 28), [Line(chips, 2, 250, 100)]),
        Sale(a["rep2a"], u["rep2"], date(2026, 4, 9), [Line(cola, 3, 1000, 600)]),
        Sale(a["rep3a"], u["rep3"], date(2026, 5, 10), [Line(chips, 10, 250, 100),
                                                        Line(cola, 1, 1000, 600)]),
        Sale(a["rep2b"], u["rep2"], date(2026, 5, 11), [Line(cola, 5, 1000, 600)],
             status="cancelled"),
        Sale(a["rep1b"], u["rep1"], date(2026, 6, 3), [Line(cola, 7, 1000, 600)]),
    ]
    await add_sales(db, rows)
    return {"april": rows[1].id, "may": rows[4].id}


async def _rows(db: Database, table: Any) -> list[tuple[Any, ...]]:
    async with db.read() as s:
        rows = (await s.execute(sa.select(*table_of(table).c))).all()
        return sorted(tuple(str(v) for v in r) for r in rows)


async def test_known_rows(db: Database, world: World, sales: dict[str, uuid.UUID]) -> None:
    async with db.write() as s:
        report = await refresh_rollups(s)
    assert (report.rebuilt, report.months, report.days) == (True, 4, 0)
    u, a = world.users, world.accounts
    async with db.read() as s:
        april = (await s.execute(sa.select(
            SalesOrderMonthly.rep_id, SalesOrderMonthly.revenue_cents,
            SalesOrderMonthly.cost_cents, SalesOrderMonthly.quantity,
            SalesOrderMonthly.order_count, SalesOrderMonthly.last_order_date).where(
            SalesOrderMonthly.bucket == 202604, SalesOrderMonthly.account_id == a["rep1a"]))).all()
        assert sorted(april, key=lambda r: -r[1]) == [
            (u["rep1"], 3900, 2200, 7, 1, date(2026, 4, 2)),
            (u["rep2"], 500, 200, 2, 1, date(2026, 4, 28))]
        cola_april = (await s.execute(sa.select(
            sa.func.sum(SalesFactMonthly.revenue_cents), sa.func.sum(SalesFactMonthly.quantity),
            sa.func.sum(SalesFactMonthly.order_count)).where(
            SalesFactMonthly.bucket == 202604,
            SalesFactMonthly.product_id == world.products["cola"]))).one()
        assert tuple(cola_april) == (5900, 6, 2)  # two cola lines, one order
        for cube in (SalesCategoryMonthly, SalesCategoryTotalMonthly):
            snacks = (await s.execute(sa.select(sa.func.sum(cube.order_count)).where(
                cube.category == "snacks"))).scalar_one()
            assert snacks == 3
        cola = (await s.execute(sa.select(
            SalesProductTotalMonthly.revenue_cents, SalesProductTotalMonthly.order_count).where(
            SalesProductTotalMonthly.bucket == 202604,
            SalesProductTotalMonthly.product_id == world.products["cola"]))).one()
        assert tuple(cola) == (5900, 2)
        may = (await s.execute(sa.select(SalesOrderMonthly.revenue_cents).where(
            SalesOrderMonthly.bucket == 202605))).scalars().all()
        assert may == [3500]  # the cancelled order is not a sale
    pairs = await _rows(db, BasketPairMonthly)
    assert sorted((p[1], p[3]) for p in pairs) == [("202604", "1"), ("202605", "1")]


@pytest.mark.parametrize("role", ["admin", "manager1", "rep1"])
@pytest.mark.parametrize("today", [None, TODAY], ids=["months", "days-from-may"])
async def test_rollup_answers_equal_live_ones(db: Database, world: World, role: str,
                                              today: date | None,
                                              sales: dict[str, uuid.UUID]) -> None:
    """Months only (the job ran in November), and months to April with days from
    1 May (the job ran on 15 June)."""
    async with db.write() as s:
        await refresh_rollups(s, today)
    who = Principal(world.users[role], {"admin": Role.ADMIN, "manager1": Role.MANAGER,
                                        "rep1": Role.REP}[role])
    groupings: list[tuple[tuple[Dimension, ...], SalesFilter]] = [
        ((), SalesFilter()), ((Dimension.MONTH,), SalesFilter()),
        ((Dimension.TERRITORY, Dimension.MONTH), SalesFilter()),
        ((Dimension.REP, Dimension.QUARTER), SalesFilter()),
        ((Dimension.CATEGORY,), SalesFilter()), ((Dimension.PRODUCT, Dimension.YEAR),
                                                 SalesFilter(categories=("drinks",))),
        ((Dimension.ACCOUNT,), SalesFilter(categories=("snacks",))),
        ((Dimension.CATEGORY, Dimension.REP, Dimension.MONTH), SalesFilter()),
        ((Dimension.PRODUCT, Dimension.QUARTER), SalesFilter(product_ids=(
            world.products["cola"], world.products["chips"]))),
        ((Dimension.MONTH,), SalesFilter(product_ids=(world.products["cola"],))),
    ]
    async with db.read() as s:
        state = await rollup_state(s)
        if today is None:
            assert state.split(ODD)[0] == [202603, 202604, 202605, 202606]
            assert state.split(NARROW) == ([202604, 202605], [
                Period(date(2026, 3, 26), date(2026, 3, 31)),
                Period(date(2026, 6, 1), date(2026, 6, 2))])
        else:
            assert state.split(NARROW) == ([202604, 202605, 20260601, 20260602], [
                Period(date(2026, 3, 26), date(2026, 3, 31))])
        scope = await Scope.of(s, who)
        for period in (SPRING, ODD, NARROW):
            for dims, filters in groupings:
                for customers in (True, False):  # without: an admin reads company totals
                    rolled = await aggregate(s, scope, period, filters, dims, True, state,
                                             customers)
                    live = await aggregate(s, scope, period, filters, dims, True,
                                           RollupState(), customers)
                    assert rolled == live, (period, dims, filters, customers)
            assert await top_customers(s, scope, period, rollups=state) == await top_customers(
                s, scope, period, rollups=RollupState())


@pytest.mark.parametrize("today", [None, TODAY], ids=["months", "days-from-may"])
async def test_baskets_from_rollups_equal_live(db: Database, world: World, today: date | None,
                                               sales: dict[str, uuid.UUID]) -> None:
    async with db.write() as s:
        await refresh_rollups(s, today)
    async with db.read() as s:
        for period in (SPRING, ODD, NARROW, Period(date(2026, 4, 1), date(2026, 6, 30))):
            for support in (0.01, 0.3, 0.6):
                rolled = await count_baskets_rolled(s, period, support)
                live = await count_baskets(s, transactions(None, period), support)
                assert rolled == live, (period, support)


def _write(spec: str, row_id: uuid.UUID, values: dict[str, Any], prev: dict[str, Any],
           scope_key: uuid.UUID, version: int = 2) -> ChangeSet:
    changes = ChangeSet()
    changes.add(RowWrite(registry[spec], row_id, "update", values, prev, version, scope_key,
                         None, HybridClock("test").now()))
    return changes


async def test_changed_orders_are_read_live_until_the_next_refresh(
        db: Database, world: World, sales: dict[str, uuid.UUID]) -> None:
    async with db.write() as s:
        await refresh_rollups(s)
    admin = Principal(world.users["admin"], Role.ADMIN)
    # April's big order is cancelled and May's moves to March after the rollup.
    async with db.write() as s:
        await flush(s, _write("order", sales["april"], {"status": OrderStatus.CANCELLED},
                              {"status": OrderStatus.FULFILLED}, world.accounts["rep1a"]))
        await flush(s, _write("order", sales["may"], {"order_date": date(2026, 3, 30)},
                              {"order_date": date(2026, 5, 10)}, world.accounts["rep3a"]))
    async with db.read() as s:
        state = await rollup_state(s)
        assert state.stale_days == {date(2026, 3, 30), date(2026, 4, 2), date(2026, 5, 10)}
        for dims in ((), (Dimension.MONTH,), (Dimension.CATEGORY,)):
            assert await aggregate(s, admin, SPRING, SalesFilter(), dims, True, state) == \
                await aggregate(s, admin, SPRING, SalesFilter(), dims, True, RollupState())
        total = await aggregate(s, admin, SPRING, SalesFilter(), (), True, state)
        assert total[()].revenue_cents == 1000 + 500 + 3000 + 3500
    async with db.write() as s:
        again = await refresh_rollups(s)
    assert (again.rebuilt, again.months, again.days) == (False, 3, 0)
    async with db.read() as s:
        state = await rollup_state(s)
        assert not state.stale_days and state.split(SPRING)[0] == [202603, 202604, 202605]
        assert await aggregate(s, admin, SPRING, SalesFilter(), (Dimension.MONTH,), True,
                               state) == await aggregate(s, admin, SPRING, SalesFilter(),
                                                         (Dimension.MONTH,), True, RollupState())


async def test_a_category_change_rebuilds(db: Database, world: World,
                                          sales: dict[str, uuid.UUID]) -> None:
    async with db.write() as s:
        await refresh_rollups(s)
    async with db.write() as s:
        await flush(s, _write("product", world.products["chips"], {"category": "crisps"},
                              {"category": "snacks"}, PUBLIC_KEY))
    async with db.read() as s:
        assert not (await rollup_state(s)).categories_current
    async with db.write() as s:
        report = await refresh_rollups(s)
    assert report.rebuilt
    async with db.read() as s:
        categories = set((await s.execute(sa.select(SalesCategoryMonthly.category))).scalars())
    assert categories == {"drinks", "crisps"}


async def test_daily_job_is_idempotent(db: Database, world: World,
                                       sales: dict[str, uuid.UUID]) -> None:
    first = await run_daily(db, TODAY)
    assert first.rollups is not None and first.rollups.rebuilt
    before = [await _rows(db, t) for t in (SalesOrderMonthly, SalesFactMonthly,
                                           SalesCategoryMonthly, BasketPairMonthly)]
    again = await run_daily(db, TODAY)
    assert again.rollups is not None and (again.rollups.rebuilt, again.rollups.months,
                                          again.rollups.days) == (False, 0, 0)
    # The job's own task writes are not orders: nothing to recompute.
    assert [await _rows(db, t) for t in (SalesOrderMonthly, SalesFactMonthly,
                                         SalesCategoryMonthly, BasketPairMonthly)] == before


async def test_scope_on_rollup_backed_answers(as_user: Any, db: Database,
                                              sales: dict[str, uuid.UUID]) -> None:
    await run_daily(db, TODAY)
    period = {"start": "2026-04-01", "end": "2026-05-31"}
    totals = {}
    for who in ("admin", "manager1", "manager2", "rep1", "rep2"):
        data = await (await as_user(who)).ok(VOLUME, {"g": ["MONTH"], "p": period})
        totals[who] = data["salesVolume"]["totals"]
    # rep1's accounts: April 3900 + 500 (one order taken by rep2); rep2's: April 3000.
    assert totals["rep1"] == {"revenueCents": 4400, "quantity": 9, "orderCount": 2,
                              "customerCount": 1}
    assert totals["rep2"]["revenueCents"] == 3000
    assert totals["manager1"]["revenueCents"] == 7400
    assert totals["manager2"]["revenueCents"] == 3500
    assert totals["admin"] == {"revenueCents": 10900, "quantity": 23, "orderCount": 4,
                               "customerCount": 3}
    top = await (await as_user("manager2")).ok(TOP, {"p": period})
    assert [c["account"]["name"] for c in top["topCustomers"]["customers"]] == ["rep3 shop 0"]


async def test_totals_summed_from_rows_equal_their_own_statement(
        db: Database, world: World, sales: dict[str, uuid.UUID]) -> None:
    await run_daily(db, TODAY)
    admin = Principal(world.users["admin"], Role.ADMIN)
    summed = Wanted(customers=(True, False, True, False))
    async with db.read() as s:
        assert cube_for((Dimension.CATEGORY,), SalesFilter(), await rollup_state(s), True,
                        False) is SalesCategoryTotalMonthly
        for dims in ((Dimension.MONTH,), (Dimension.TERRITORY, Dimension.REP)):
            for period in (SPRING, NARROW):
                own = await sales_volume(s, admin, period, dims)
                derived = await sales_volume(s, admin, period, dims, wanted=summed)
                for a, b in ((own.totals, derived.totals),
                             (own.previous_totals, derived.previous_totals)):
                    assert a is not None and b is not None
                    assert replace(a, customers=0) == b, (dims, period)
                assert own.rows == derived.rows


async def test_rfm_from_rollups_equals_live(db: Database, world: World,
                                            sales: dict[str, uuid.UUID]) -> None:
    await run_daily(db, TODAY)
    async with db.read() as s:
        state = await rollup_state(s)
        for window in (RfmWindow(TODAY), RfmWindow(date(2026, 5, 31), 1),
                       RfmWindow(date(2026, 4, 30), 1), RfmWindow(date(2026, 6, 2), 2)):
            rolled = (await s.execute(sa.select(scored(window, state)))).all()
            live = (await s.execute(sa.select(scored(window)))).all()
            assert sorted(map(tuple, rolled)) == sorted(map(tuple, live)), window
            assert rolled


async def test_recent_days_then_folded_into_months(db: Database, world: World,
                                                   sales: dict[str, uuid.UUID]) -> None:
    """From 1 May there are day buckets: a change on 10 May sends that day alone back to
    the orders. In July, May is read as one month bucket again; in August its day
    buckets are dropped."""
    admin = Principal(world.users["admin"], Role.ADMIN)
    first = await run_daily(db, TODAY)
    assert first.rollups is not None and (first.rollups.months, first.rollups.days) == (4, 34)
    async with db.write() as s:
        await flush(s, _write("order", sales["may"], {"status": OrderStatus.CANCELLED},
                              {"status": OrderStatus.FULFILLED}, world.accounts["rep3a"]))
    async with db.read() as s:
        state = await rollup_state(s)
        buckets, live = state.split(SPRING)
        assert live == [Period(date(2026, 5, 10), date(2026, 5, 10))]
        assert 202604 in buckets and 20260509 in buckets and 20260511 in buckets
        for dims in ((), (Dimension.MONTH,), (Dimension.CATEGORY, Dimension.REP)):
            assert await aggregate(s, admin, SPRING, SalesFilter(), dims, True, state) == \
                await aggregate(s, admin, SPRING, SalesFilter(), dims, True, RollupState())
    july = await run_daily(db, date(2026, 7, 2))
    assert july.rollups is not None and (july.rollups.months, july.rollups.days) == (1, 0)
    async with db.read() as s:
        keys = set((await s.execute(sa.select(SalesOrderMonthly.bucket))).scalars())
        # May's only sale was cancelled (its days are kept a month, but not a changed one).
        assert keys == {202603, 202604, 202606, 20260603}
        state = await rollup_state(s)
        assert state.split(SPRING) == ([202603, 202604, 202605], [])
        assert await aggregate(s, admin, ODD, SalesFilter(), (Dimension.MONTH,), True,
                               state) == await aggregate(s, admin, ODD, SalesFilter(),
                                                         (Dimension.MONTH,), True, RollupState())
    await run_daily(db, date(2026, 8, 2))
    async with db.read() as s:
        days = {b for b in (await s.execute(sa.select(SalesFactMonthly.bucket))).scalars()
                if b > 999999}
        assert days == {20260603}  # June is still kept for a month
