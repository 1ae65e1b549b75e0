"""Sales rollups: how the daily job keeps them, and which parts of a period a query may
read from them.

**Buckets.** Each cube row belongs to a bucket: a month (yyyymm), and also a day
(yyyymmdd) from the first day of the previous month on (`days_from`): in the recent past
orders still change (confirmed, cancelled, back-dated), and one day's changes should not
send a whole month back to the order lines. A month is read as one bucket when it can
be, as days otherwise.

**Freshness rule.** The rollups record the change-log position (`sync_change.seq`) they
are current with. A query reads a bucket from them only when the bucket lies inside its
period (a month: every day of it that held a sale then), and no order of that month or
day was written since (the change log names the orders written after that position; an
order's previous date comes from the change's `prev`). Everything else (partial months
at the period's edges beyond the recent days, days with new or changed orders, everything
when the change log was compacted past the rollups' position) is read from the orders.
So a rollup-backed answer equals the live one at any moment; the daily job only decides
how much of it is fast.

**Refresh** (`refresh_rollups`, run by `fieldsync jobs daily`, idempotent): the buckets
whose orders changed since the last run are deleted and recomputed from the orders (one
INSERT … SELECT per cube), the day buckets of a month that left the recent days are
dropped a month later; the first run, a compacted change log or a product whose category changed
rebuild everything.
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


def _entity_is(c: Any, entity: str) -> sa.ColumnElement[bool]:
    # An expression, not the bare column: SQLite (no planner statistics) would otherwise
    # walk ix_sync_change_row over every change of the entity instead of the seq range.
    return sa.func.coalesce(c.c.entity, "") == entity


async def _changed_days(session: AsyncSession, after_seq: int) -> set[date]:
    """Days holding an order written after `after_seq`, by its date now and before."""
    c = table_of(Change)
    changes = sa.select(c.c.row_id, c.c.prev).where(c.c.seq > after_seq,
                                                    _entity_is(c, "order")).subquery("ch")
    before = changes.c.prev["order_date"].as_string()
    stmt = sa.select(col(Order.order_date), before).distinct().select_from(
        changes.outerjoin(Order, col(Order.id) == changes.c.row_id))
    out: set[date] = set()
    for now, was in (await session.execute(stmt)).all():
        if now is not None:
            out.add(now)
        if was:
            out.add(date.fromisoformat(str(was)[:10]))
    return out


async def _category_changed(session: AsyncSession, after_seq: int) -> bool:
    c = table_of(Change)
    stmt = sa.select(c.c.seq).where(c.c.seq > after_seq, _entity_is(c, "product"),
                                    c.c.prev["category"].as_string().is_not(None)).limit(1)
    return (await session.execute(stmt)).first() is not None


def month_bucket(day: date) -> int:
    return day.year * 100 + day.month


def day_bucket(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


#: Buckets above this are days (yyyymmdd); the others are months (yyyymm).
LAST_MONTH_BUCKET = 999_999


def bucket_month(bucket: Any) -> Any:
    """SQL: the month (yyyymm) of a bucket (yyyymm or yyyymmdd)."""
    return sa.case((bucket > LAST_MONTH_BUCKET, bucket // 100), else_=bucket)


def days_from_for(today: date) -> date:
    """The first day rolled up per day: the first of the previous month."""
    first = today.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


@dataclass(frozen=True)
class RollupState:
    """What the rollups hold and which of their buckets are still current."""

    #: The first and last day with a sale when the rollups were computed.
    first_day: date | None = None
    last_day: date | None = None
    #: Days from this one on are day buckets; months before it month buckets.
    days_from: date | None = None
    #: Days whose orders changed since the rollups were computed.
    stale_days: frozenset[date] = field(default_factory=frozenset)
    #: False when a product's category changed since (the category cubes are stale).
    categories_current: bool = True
    #: False when there is nothing to read (never refreshed, or history compacted).
    usable: bool = False

    def split(self, period: Period) -> tuple[list[int], list[Period]]:
        """(buckets read from the rollups, day ranges read live) covering `period`.

        A month bucket is read when no order of the month changed since and the period
        covers every day of it that held a sale then (a whole month, the current month up
        to today, or the first month of the history from its first sale). Otherwise, in
        the recent days, the day buckets of the days whose orders did not change."""
        if not self.usable:
            return [], [period]
        stale_months = {month_bucket(d) for d in self.stale_days}
        buckets: list[int] = []
        covered: list[Period] = []
        key, last = month_bucket(period.start), month_bucket(period.end)
        while key <= last:
            month = _month_period(key)
            start, end = month.start, month.end
            head = period.start <= start or (self.first_day is not None
                                             and period.start <= self.first_day)
            tail = period.end >= end or (self.last_day is not None
                                         and period.end >= self.last_day)
            if head and tail and key not in stale_months:
                buckets.append(key)
                covered.append(Period(max(start, period.start), min(end, period.end)))
            elif self.days_from is not None and start >= self.days_from:
                day = max(start, period.start)
                while day <= min(end, period.end):
                    if day not in self.stale_days:
                        buckets.append(day_bucket(day))
                        covered.append(Period(day, day))
                    day += timedelta(days=1)
            key = add_months(key, 1)
        return buckets, _gaps(period, covered)


def _gaps(period: Period, covered: Sequence[Period]) -> list[Period]:
    """The days of `period` outside `covered` (in order, not overlapping), as ranges."""
    live: list[Period] = []
    cursor = period.start
    for part in covered:
        if part.start > cursor:
            live.append(Period(cursor, part.start - timedelta(days=1)))
        cursor = max(cursor, part.end + timedelta(days=1))
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
        return RollupState()
    return RollupState(row.first_day, row.last_day, row.days_from,
                       frozenset(await _changed_days(session, row.seq)),
                       not await _category_changed(session, row.seq), usable=True)


def _merged(periods: Iterable[Period]) -> list[Period]:
    """Day ranges sorted, adjacent or overlapping ones merged."""
    out: list[Period] = []
    for p in sorted(periods, key=lambda p: p.start):
        if out and out[-1].end + timedelta(days=1) >= p.start:
            out[-1] = Period(out[-1].start, max(out[-1].end, p.end))
        else:
            out.append(p)
    return out


def _month_period(key: int) -> Period:
    return Period(month_start(key), month_start(add_months(key, 1)) - timedelta(days=1))


def _sold(periods: list[Period], by_day: bool) -> sa.Subquery:
    day = col(Order.order_date)
    bucket = month_key(day) * 100 + sa.cast(sa.extract("day", day), sa.Integer) \
        if by_day else month_key(day)
    return sold_orders(None, periods=periods).with_only_columns(
        col(Order.id), col(Order.account_id), col(Order.rep_id), col(Order.order_date),
        col(Order.total_cents), col(Order.cost_cents), bucket.label("m")).subquery("o")


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


async def _fill(session: AsyncSession, periods: list[Period], by_day: bool) -> None:
    """INSERT … SELECT every cube for the days `periods` cover (deleted already), in
    month buckets or day buckets."""
    o = _sold(periods, by_day)
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
        ["bucket", "account_id", "rep_id", *measures, "first_order_date", "last_order_date"],
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
            ["bucket", *names, *measures], _line_cube(o, keys, src)))
    items = (sa.select(o.c.m, o.c.id.label("order_id"), col(OrderLine.product_id))
             .select_from(lines_of).distinct().cte("items"))
    await session.execute(table_of(BasketItemMonthly).insert().from_select(
        ["bucket", "product_id", "order_count"],
        sa.select(items.c.m, items.c.product_id, sa.func.count())
        .group_by(items.c.m, items.c.product_id)))
    a, b = items.alias("a"), items.alias("b")
    pairs = (sa.select(a.c.product_id, a.c.m, b.c.product_id, sa.func.count())
             .select_from(a.join(b, sa.and_(a.c.order_id == b.c.order_id,
                                            a.c.product_id < b.c.product_id)))
             .group_by(a.c.product_id, a.c.m, b.c.product_id))
    await session.execute(table_of(BasketPairMonthly).insert().from_select(
        ["product_a", "bucket", "product_b", "order_count"], pairs))


@dataclass(frozen=True)
class RefreshReport:
    rebuilt: bool
    #: Month and day buckets recomputed.
    months: int
    days: int
    seq: int

    def __str__(self) -> str:
        what = "rebuilt" if self.rebuilt else "refreshed"
        return (f"sales rollups {what}: {self.months} months and {self.days} days "
                f"recomputed, current with change {self.seq}")


async def refresh_rollups(session: AsyncSession, today: date | None = None,
                          full: bool = False) -> RefreshReport:
    """Recompute the buckets whose orders changed since the last refresh and drop the day
    buckets of months that left the recent days a month ago (everything on the first
    run, after a compaction past it, or when a product changed category)."""
    session.info.pop(_STATE_KEY, None)
    days_from = days_from_for(today or utcnow().date())
    head, horizon = (await session.execute(
        sa.select(col(LogHead.last_seq), col(LogHead.horizon_seq)))).one_or_none() or (0, 0)
    state = (await session.execute(sa.select(AnalyticsRollup).where(
        col(AnalyticsRollup.name) == NAME))).scalar_one_or_none()
    full = full or state is None or horizon > state.seq or state.days_from is None or \
        state.days_from > days_from or await _category_changed(session, state.seq)
    first_day, last_day = (await session.execute(sold_orders(None).with_only_columns(
        sa.func.min(col(Order.order_date)), sa.func.max(col(Order.order_date))))).one()
    months: set[int] = set()
    days: set[date] = set()
    if full:
        for cube in CUBES:
            await session.execute(sa.delete(cube))
        if first_day is not None and last_day is not None:
            key = month_bucket(first_day)
            while key <= month_bucket(last_day):
                months.add(key)
                key = add_months(key, 1)
            day = max(first_day, days_from)
            while day <= last_day:
                days.add(day)
                day += timedelta(days=1)
    else:
        assert state is not None and state.days_from is not None
        changed = await _changed_days(session, state.seq)
        months = {month_bucket(d) for d in changed}
        days = {d for d in changed if d >= days_from}
        # Day buckets of a month that left the recent days are dropped a month later: a
        # query that read the rollup state just before this commit may still use them.
        drop_before = day_bucket(days_from_for(days_from))
        stale = sorted(months) + sorted(day_bucket(d) for d in changed)
        for cube in CUBES:
            # Old day buckets, and the changed months and days (days before the recent
            # ones are only deleted), in one statement per cube.
            bucket = table_of(cube).c.bucket
            await session.execute(sa.delete(cube).where(sa.or_(
                sa.and_(bucket > LAST_MONTH_BUCKET, bucket < drop_before),
                bucket.in_(stale))))
    if months:
        await _fill(session, _merged(_month_period(m) for m in months), by_day=False)
    if days:
        await _fill(session, _merged(Period(d, d) for d in days), by_day=True)
    if state is None:
        state = AnalyticsRollup(name=NAME, seq=head, refreshed_at=utcnow())
        session.add(state)
    state.seq, state.first_day, state.last_day = head, first_day, last_day
    state.days_from, state.refreshed_at = days_from, utcnow()
    await session.flush()
    session.info.pop(_STATE_KEY, None)
    return RefreshReport(full, len(months), len(days), head)


def company_wide(scope: Scope | Principal | None) -> bool:
    """Whether `scope` reads every sale of the company (an admin, or a company model)."""
    if isinstance(scope, Principal):
        return scope.is_admin
    return scope is None or scope.principal.is_admin


def scoped_accounts(column: Any, scope: Scope) -> sa.ColumnElement[bool]:
    """The scope rule on a rollup's `account_id` (an order's scope key is its account):
    the same keys `Scope.read` tests on the orders."""
    if scope.keys is not None:
        return sa.and_(column.in_(scope.keys))
    keys = visible_keys(scope.principal)
    return sa.true() if keys is None else sa.and_(column.in_(keys))
