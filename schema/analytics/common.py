"""What every analytics service shares: periods, "what counts as a sale", the scope filter
on orders, and the two SQL expressions whose spelling differs between SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import col

from schema.enums import OrderStatus
from schema.orders.tables import Order
from schema.scope import Principal, readable, visible_keys
from sync.model import table_of

#: Orders that count as sales: booked (confirmed by the back office) or delivered.
#: Drafts, orders awaiting approval, cancelled and rejected ones do not.
SOLD = (OrderStatus.CONFIRMED, OrderStatus.FULFILLED)


@dataclass(frozen=True)
class Period:
    """A range of days, both ends included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("a period's end must not be before its start")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def whole_months(self) -> int | None:
        """How many calendar months the period spans exactly, or None."""
        after = self.end + timedelta(days=1)
        if self.start.day != 1 or after.day != 1:
            return None
        return (after.year * 12 + after.month) - (self.start.year * 12 + self.start.month)

    def previous(self) -> Period:
        """The period just before: as many whole months for a whole-month period (April
        before May), else as many days."""
        months = self.whole_months
        if months:
            start_key = add_months(self.start.year * 100 + self.start.month, -months)
            return Period(month_start(start_key), self.start - timedelta(days=1))
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def previous_year(self) -> Period:
        return Period(shift_years(self.start, -1), shift_years(self.end, -1))

    @classmethod
    def trailing(cls, end: date, days: int) -> Period:
        """The `days` days ending on `end`."""
        return cls(end - timedelta(days=days - 1), end)


def shift_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


#: Above this many keys a scope stays a subquery (bind-parameter limits, plan size).
KEY_LIST_MAX = 5000


@dataclass(frozen=True)
class Scope:
    """A caller's scope for analytics: `visible_keys(principal)` evaluated once.

    It is the same rule as `readable()`; as a list of values it gives the planner the
    real selectivity. As a subquery, its OR makes PostgreSQL guess half of sync_scope,
    and it then scans every order line for a manager's tenth of them.
    """

    principal: Principal
    #: The keys, or None: every key (admins) or too many to list (the subquery is used).
    keys: tuple[uuid.UUID, ...] | None = None

    @classmethod
    async def of(cls, session: AsyncSession, principal: Principal) -> Scope:
        select = visible_keys(principal)
        if select is None:
            return cls(principal)
        keys = tuple((await session.execute(select.limit(KEY_LIST_MAX + 1))).scalars())
        return cls(principal, keys if len(keys) <= KEY_LIST_MAX else None)

    def read(self, stmt: sa.Select[Any], model: Any) -> sa.Select[Any]:
        """`readable(stmt, model, principal)`, with the listed keys when there are."""
        if self.keys is None:
            return readable(stmt, model, self.principal)
        return stmt.where(col(model.scope_key).in_(self.keys), col(model.deleted).is_(False))


def sold_orders(scope: Scope | Principal | None, period: Period | None = None,
                periods: Iterable[Period] | None = None) -> sa.Select[Any]:
    """`SELECT … FROM sales_order` restricted to sales the caller may read, dated in
    `period` and in one of `periods` when given.

    Callers pick their columns with `.with_only_columns(...)` or select from it as a
    subquery. The scope is the account's (an order's scope key is its account's id), so a
    manager sees every sale to their team's accounts whoever took the order. `None` reads
    every sale: only for company-wide *models* (RFM bins, basket rules) whose output names
    no account, never for figures shown to a caller.
    """
    stmt = sa.select(table_of(Order)).where(col(Order.deleted).is_(False))
    if isinstance(scope, Principal):
        scope = Scope(scope)
    if scope is not None:
        stmt = scope.read(stmt, Order)
    # An expression on the status, not the bare column: nineteen orders in twenty are
    # sales, so an index on the status never narrows them down (migration 0008 dropped
    # ours), yet SQLite (no planner statistics) would walk one, and fetch every sale of
    # the company, before the period's or the scope's index.
    stmt = stmt.where(sa.func.coalesce(col(Order.status), sa.literal("", sa.String)).in_(SOLD))
    if period is not None:
        stmt = stmt.where(col(Order.order_date).between(period.start, period.end))
    if periods is not None:
        stmt = stmt.where(in_periods(col(Order.order_date), periods))
    return stmt


def in_periods(column: Any, periods: Iterable[Period]) -> sa.ColumnElement[bool]:
    """`column` falls in one of `periods` (false for none)."""
    return sa.or_(sa.false(), *(column.between(p.start, p.end) for p in periods))


def month_key(column: Any) -> sa.ColumnElement[int]:
    """yyyymm as an integer (e.g. 202605), portable between SQLite and PostgreSQL."""
    year = sa.cast(sa.extract("year", column), sa.Integer)
    month = sa.cast(sa.extract("month", column), sa.Integer)
    return year * 100 + month


def add_months(key: int, months: int) -> int:
    """Shift a yyyymm key by `months` (may be negative)."""
    index = (key // 100) * 12 + (key % 100 - 1) + months
    return (index // 12) * 100 + index % 12 + 1


def month_start(key: int) -> date:
    return date(key // 100, key % 100, 1)


def month_label(key: int) -> str:
    return f"{key // 100:04d}-{key % 100:02d}"


class days_between(FunctionElement[float]):
    """Fractional days from the first timestamp to the second (b - a)."""

    type = sa.Float()
    name = "days_between"
    inherit_cache = True


@compiles(days_between, "sqlite")
def _days_sqlite(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"(julianday({b}) - julianday({a}))"


@compiles(days_between, "postgresql")
def _days_pg(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({b} - {a})) / 86400.0)"


class date_diff(FunctionElement[int]):
    """Whole days from the first date to the second (b - a), for DATE columns."""

    type = sa.Integer()
    name = "date_diff"
    inherit_cache = True


@compiles(date_diff, "sqlite")
def _date_diff_sqlite(element: date_diff, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(julianday({b}) - julianday({a}) AS INTEGER)"


@compiles(date_diff, "postgresql")
def _date_diff_pg(element: date_diff, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(c, **kw) for c in element.clauses)
    return f"({b} - {a})"


def day(value: date) -> sa.BindParameter[date]:
    """A date literal typed as DATE (so PostgreSQL subtracts dates, SQLite stores ISO text)."""
    return sa.literal(value, sa.Date)


def as_uuid(value: Any) -> uuid.UUID | None:
    """A UUID from a GraphQL ID; None for a missing or malformed one (it matches nothing)."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
