"""Monthly sales rollups: how the daily job keeps them, and which months a query may read.

**Freshness rule.** The rollups (schema.analytics.tables) record the change-log position
(`sync_change.seq`) they are current with. A query reads a month from them only when the
month is whole inside its period, was rolled up, and no order of that month changed since
(the change log names the orders written after that position; an order's previous date
comes from the change's `prev`). Everything else (partial months at the period's edges,
today's month, months with new or changed orders, everything when the change log was
compacted past the rollups' position) is read from the orders themselves. So a rollup-backed
answer equals the live one at any moment; the daily job only decides how much is fast.

**Refresh** (`refresh_rollups`, run by `fieldsync jobs daily`, idempotent): the months whose
orders changed since the last run are deleted and recomputed from the orders, each cube
with one INSERT … SELECT per table; the first run, a compacted change log or a product
whose category changed rebuild every month.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.analytics.common import (
    Period,
    Scope,
    add_months,
    month_key,
    month_start,
    sold_orders,
)
from schema.analytics.tables import (
    AnalyticsRollup,
    BasketItemMonthly,
    BasketPairMonthly,
    SalesCategoryMonthly,
    SalesCategoryTotalMonthly,
    SalesFactMonthly,
    SalesOrderMonthly,
    SalesProductTotalMonthly,
)
from schema.catalog.tables import Product
from schema.orders.tables import Order, OrderLine
from schema.scope import Principal, visible_keys
from sync.model import table_of, utcnow
from sync.tables import Change, LogHead

NAME = "sales"
#: Each cube, in the order the refresh fills them.
CUBES = (SalesOrderMonthly, SalesCategoryMonthly, SalesFactMonthly, SalesCategoryTotalMonthly,
         SalesProductTotalMonthly, BasketItemMonthly, BasketPairMonthly)


def _month_of_text(value: Any) -> Any:
    """yyyymm of an ISO date held as text (a change's previous `order_date`)."""
    return (sa.cast(sa.func.substr(value, 1, 4), sa.Integer) * 100
            + sa.cast(sa.func.substr(value, 6, 2), sa.Integer))


def _entity_is(c: Any, entity: str) -> sa.ColumnElement[bool]:
    # An expression, not the bare column: SQLite (no planner statistics) would otherwise
    # walk ix_sync_change_row over every change of the entity instead of the seq range.
    return sa.func.coalesce(c.c.entity, "") == entity


async def _changed_months(session: AsyncSession, after_seq: int) -> set[int]:
    """Months holding an order written after `after_seq`, by its date now and before."""
    c = table_of(Change)
    changes = sa.select(c.c.row_id, c.c.prev).where(c.c.seq > after_seq,
                                                    _entity_is(c, "order")).subquery("ch")
    now = (sa.select(month_key(col(Order.order_date)).label("m"))
           .select_from(changes.join(Order, col(Order.id) == changes.c.row_id)))
    before_text = changes.c.prev["order_date"].as_string()
    before = sa.select(_month_of_text(before_text).label("m")).where(before_text.is_not(None))
    rows = (await session.execute(sa.union(now, before))).scalars()
    return {int(m) for m in rows if m is not None}


async def _category_changed(session: AsyncSession, after_seq: int) -> bool:
    c = table_of(Change)
    stmt = sa.select(c.c.seq).where(c.c.seq > after_seq, _entity_is(c, "product"),
                                    c.c.prev["category"].as_string().is_not(None)).limit(1)
    return (await session.execute(stmt)).first() is not None


@dataclass(frozen=True)
class RollupState:
    """What the rollups hold and which of their months are still current."""

    seq: int = 0
    #: The first and last day with a sale when the rollups were computed.
    first_day: date | None = None
    last_day: date | None = None
    #: Months whose orders changed since the rollups were computed.
    stale: frozenset[int] = field(default_factory=frozenset)
    #: False when a product's category changed since (the category cube is stale).
    categories_current: bool = True
    #: False when there is nothing to read (never refreshed, or history compacted).
    usable: bool = False

    def split(self, period: Period) -> tuple[list[int], list[Period]]:
        """(months read from the rollups, day ranges read live) covering `period`.

        A month is read from the rollups when none of its orders changed since and the
        period covers every day of it that held a sale then: a whole month, or the
        current month up to today (no sale after today), or the first month of the
        history from its first sale."""
        months: list[int] = []
        if self.usable:
            key = period.start.year * 100 + period.start.month
            last = period.end.year * 100 + period.end.month
            while key <= last:
                start, end = month_start(key), month_start(add_months(key, 1)) - timedelta(days=1)
                head = period.start <= start or (self.first_day is not None
                                                 and period.start <= self.first_day)
                tail = period.end >= end or (self.last_day is not None
                                             and period.end >= self.last_day)
                if head and tail and key not in self.stale:
                    months.append(key)
                key = add_months(key, 1)
        return months, _gaps(period, months)


def _gaps(period: Period, months: Sequence[int]) -> list[Period]:
    live: list[Period] = []
    cursor = period.start
    for key in months:
        start = month_start(key)
        if start > cursor:
            live.append(Period(cursor, start - timedelta(days=1)))
        cursor = max(cursor, month_start(add_months(key, 1)))
    if cursor <= period.end:
        live.append(Period(cursor, period.end))
    return live


async def rollup_state(session: AsyncSession) -> RollupState:
    """The rollups' state for this unit of work: two or three small statements the first
    time, kept on the session for the rest of it (a request, the daily job)."""
    found = session.info.get(_STATE_KEY)
    if found is None:
        found = session.info[_STATE_KEY] = await _read_state(session)
    state: RollupState = found
    return state


_STATE_KEY = "fieldsync.analytics.rollup_state"


async def _read_state(session: AsyncSession) -> RollupState:
    row = (await session.execute(sa.select(AnalyticsRollup).where(
        col(AnalyticsRollup.name) == NAME))).scalar_one_or_none()
    if row is None:
        return RollupState()
    horizon = (await session.execute(sa.select(col(LogHead.horizon_seq)))).scalar()
    if horizon is not None and horizon > row.seq:
        return RollupState(row.seq)
    return RollupState(row.seq, row.first_day, row.last_day,
                       frozenset(await _changed_months(session, row.seq)),
                       not await _category_changed(session, row.seq), usable=True)


def in_periods(column: Any, periods: Iterable[Period]) -> sa.ColumnElement[bool]:
    return sa.or_(sa.false(), *(column.between(p.start, p.end) for p in periods))


def _month_periods(months: Iterable[int]) -> list[Period]:
    """Whole months as day ranges, consecutive months merged."""
    out: list[Period] = []
    for key in sorted(set(months)):
        p = Period(month_start(key), month_start(add_months(key, 1)) - timedelta(days=1))
        if out and out[-1].end + timedelta(days=1) == p.start:
            out[-1] = Period(out[-1].start, p.end)
        else:
            out.append(p)
    return out


def _sold(periods: list[Period]) -> sa.Subquery:
    stmt = sold_orders(None).with_only_columns(
        col(Order.id), col(Order.account_id), col(Order.rep_id), col(Order.order_date),
        col(Order.total_cents), col(Order.cost_cents), month_key(col(Order.order_date)).label("m"))
    return stmt.where(in_periods(col(Order.order_date), periods)).subquery("o")


def _line_cube(o: sa.Subquery, keys: Sequence[Any], src: Any) -> sa.Select[Any]:
    """Lines of the orders `o` (joined in `src`) grouped by month and `keys`."""
    return (
        sa.select(o.c.m, *keys,
                  sa.func.sum(col(OrderLine.line_total_cents)),
                  sa.func.sum(col(OrderLine.quantity) * col(OrderLine.unit_cost_cents)),
                  sa.func.sum(col(OrderLine.quantity)),
                  sa.func.count(sa.distinct(o.c.id)))
        .select_from(src).group_by(o.c.m, *keys)
    )


async def _fill(session: AsyncSession, periods: list[Period]) -> None:
    """INSERT … SELECT every cube for the months `periods` cover (already deleted)."""
    o = _sold(periods)
    per_order_qty = (sa.select(col(OrderLine.order_id), sa.func.sum(col(OrderLine.quantity))
                               .label("q"))
                     .where(col(OrderLine.order_id).in_(sa.select(o.c.id)))
                     .group_by(col(OrderLine.order_id)).subquery("q"))
    orders = (
        sa.select(o.c.m, o.c.account_id, o.c.rep_id, sa.func.sum(o.c.total_cents),
                  sa.func.sum(o.c.cost_cents), sa.func.coalesce(sa.func.sum(per_order_qty.c.q), 0),
                  sa.func.count(), sa.func.min(o.c.order_date), sa.func.max(o.c.order_date))
        .select_from(o.outerjoin(per_order_qty, per_order_qty.c.order_id == o.c.id))
        .group_by(o.c.m, o.c.account_id, o.c.rep_id)
    )
    measures = ["revenue_cents", "cost_cents", "quantity", "order_count"]
    t = table_of(SalesOrderMonthly)
    await session.execute(t.insert().from_select(
        ["month", "account_id", "rep_id", *measures, "first_order_date", "last_order_date"],
        orders))
    lines_of = o.join(OrderLine, col(OrderLine.order_id) == o.c.id)
    with_product = lines_of.join(Product, col(Product.id) == col(OrderLine.product_id))
    who, rep = ["account_id", "rep_id"], ["rep_id"]
    for table, names, keys, src in (
            (SalesCategoryMonthly, ["category", *who],
             [col(Product.category), o.c.account_id, o.c.rep_id], with_product),
            (SalesFactMonthly, ["product_id", *who],
             [col(OrderLine.product_id), o.c.account_id, o.c.rep_id], lines_of),
            (SalesCategoryTotalMonthly, ["category", *rep], [col(Product.category), o.c.rep_id],
             with_product),
            (SalesProductTotalMonthly, ["product_id"], [col(OrderLine.product_id)], lines_of)):
        await session.execute(table_of(table).insert().from_select(
            ["month", *names, *measures], _line_cube(o, keys, src)))
    items = (sa.select(o.c.m, o.c.id.label("order_id"), col(OrderLine.product_id))
             .select_from(lines_of).distinct().cte("items"))
    await session.execute(table_of(BasketItemMonthly).insert().from_select(
        ["month", "product_id", "order_count"],
        sa.select(items.c.m, items.c.product_id, sa.func.count())
        .group_by(items.c.m, items.c.product_id)))
    a, b = items.alias("a"), items.alias("b")
    pairs = (sa.select(a.c.product_id, a.c.m, b.c.product_id, sa.func.count())
             .select_from(a.join(b, sa.and_(a.c.order_id == b.c.order_id,
                                            a.c.product_id < b.c.product_id)))
             .group_by(a.c.product_id, a.c.m, b.c.product_id))
    await session.execute(table_of(BasketPairMonthly).insert().from_select(
        ["product_a", "month", "product_b", "order_count"], pairs))


@dataclass(frozen=True)
class RefreshReport:
    rebuilt: bool
    months: int
    seq: int

    def __str__(self) -> str:
        what = "rebuilt" if self.rebuilt else "refreshed"
        return f"sales rollups {what}: {self.months} months, current with change {self.seq}"


async def refresh_rollups(session: AsyncSession, full: bool = False) -> RefreshReport:
    """Recompute the months whose orders changed since the last refresh (every month on
    the first run, after a compaction past it, or when a product changed category)."""
    session.info.pop(_STATE_KEY, None)
    head, horizon = (await session.execute(
        sa.select(col(LogHead.last_seq), col(LogHead.horizon_seq)))).one_or_none() or (0, 0)
    state = (await session.execute(sa.select(AnalyticsRollup).where(
        col(AnalyticsRollup.name) == NAME))).scalar_one_or_none()
    full = full or state is None or horizon > state.seq or \
        await _category_changed(session, state.seq)
    first_day, last_day = (await session.execute(sold_orders(None).with_only_columns(
        sa.func.min(col(Order.order_date)), sa.func.max(col(Order.order_date))))).one()
    if full:
        for cube in CUBES:
            await session.execute(sa.delete(cube))
        months: set[int] = set()
        key = first_day.year * 100 + first_day.month if first_day else None
        while key is not None and last_day is not None and month_start(key) <= last_day:
            months.add(key)
            key = add_months(key, 1)
    else:
        assert state is not None
        months = await _changed_months(session, state.seq)
        for cube in CUBES if months else ():
            table = table_of(cube)
            await session.execute(sa.delete(table).where(table.c.month.in_(sorted(months))))
    if months:
        await _fill(session, _month_periods(months))
    if state is None:
        state = AnalyticsRollup(name=NAME, seq=head, refreshed_at=utcnow())
        session.add(state)
    state.seq, state.first_day, state.last_day = head, first_day, last_day
    state.refreshed_at = utcnow()
    await session.flush()
    session.info.pop(_STATE_KEY, None)
    return RefreshReport(full, len(months), head)



def company_wide(scope: Scope | Principal | None) -> bool:
    """Whether `scope` reads every sale of the company (an admin, or a company model)."""
    if isinstance(scope, Principal):
        return scope.is_admin
    return scope is None or scope.principal.is_admin


def scoped_accounts(column: Any, scope: Scope | None) -> sa.ColumnElement[bool]:
    """The scope rule on a rollup's `account_id` (an order's scope key is its account):
    the same keys `Scope.read` tests on the orders. None: the whole company (models)."""
    if scope is None:
        return sa.true()
    if scope.keys is not None:
        return sa.and_(column.in_(scope.keys))
    keys = visible_keys(scope.principal)
    return sa.true() if keys is None else sa.and_(column.in_(keys))
