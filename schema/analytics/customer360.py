"""The customer 360 ("screen pop", crm-domain.md §4.7): one account, every angle.

One function per block, one SQL statement each (money: two), every one through the
scope rule; the GraphQL type calls only those whose fields were asked for. Money follows
the credit check in schema/orders/sync.py: exposure = open invoice amounts + the orders
it counts (EXPOSED: submitted, confirmed or fulfilled) that are not invoiced yet.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.accounts.tables import Account, Contact
from schema.activities.tables import Task, VisitNote
from schema.analytics.common import Period, sold_orders
from schema.billing.tables import Invoice
from schema.enums import CaseCategory, CasePriority, CaseStatus, InvoiceStatus
from schema.orders.sync import EXPOSED
from schema.orders.tables import Order, OrderLine
from schema.scope import Principal, readable
from schema.service.tables import Case
from sync.model import table_of

Row = sa.RowMapping
#: Open cases flagged in the screen pop: billing complaints, escalations, high priority,
#: and anything opened in the last week.
FLAG_CATEGORIES = (CaseCategory.WRONG_INVOICE, CaseCategory.PRICING)
RECENT_CASE_DAYS = 7


async def account_row(session: AsyncSession, principal: Principal,
                      account_id: uuid.UUID) -> Row | None:
    stmt = readable(sa.select(table_of(Account)), Account, principal).where(
        col(Account.id) == account_id)
    return (await session.execute(stmt)).mappings().first()


def _mine(model: Any, principal: Principal, account_id: uuid.UUID) -> sa.Select[Any]:
    return readable(sa.select(model.__table__), model, principal).where(
        model.account_id == account_id)


@dataclass(frozen=True)
class Money:
    open_invoices: list[Row]  # overdue first, oldest due date first
    balance_cents: int
    overdue_cents: int
    oldest_overdue_days: int | None
    unbilled_cents: int

    @property
    def exposure_cents(self) -> int:
        return self.balance_cents + self.unbilled_cents


async def money(session: AsyncSession, principal: Principal, account_id: uuid.UUID,
                today: date) -> Money:
    """Open invoices (one statement) and the total of orders not invoiced yet (another)."""
    overdue = col(Invoice.due_date) < today
    stmt = (
        _mine(Invoice, principal, account_id).where(col(Invoice.status) == InvoiceStatus.OPEN)
        .order_by(sa.case((overdue, 0), else_=1), col(Invoice.due_date), col(Invoice.id))
    )
    rows = list((await session.execute(stmt)).mappings())
    invoiced = sa.select(col(Invoice.order_id)).where(col(Invoice.order_id) == col(Order.id))
    unbilled = (
        readable(sa.select(sa.func.coalesce(sa.func.sum(col(Order.total_cents)), 0)), Order, principal)
        .where(col(Order.account_id) == account_id, col(Order.status).in_(EXPOSED), ~sa.exists(invoiced))
    )
    late = [r for r in rows if r["due_date"] < today]
    return Money(rows, sum(r["amount_open_cents"] for r in rows),
                 sum(r["amount_open_cents"] for r in late),
                 (today - late[0]["due_date"]).days if late else None,
                 int((await session.execute(unbilled)).scalar_one()))


async def recent_orders(session: AsyncSession, principal: Principal, account_id: uuid.UUID,
                        today: date, limit: int = 5) -> list[Row]:
    stmt = _mine(Order, principal, account_id).where(col(Order.order_date) <= today).order_by(
        col(Order.order_date).desc(), col(Order.id).desc()).limit(limit)
    return list((await session.execute(stmt)).mappings())


@dataclass(frozen=True)
class Purchases:
    revenue_12m_cents: int
    revenue_prior_12m_cents: int
    orders_12m: int
    first_order_date: date | None
    last_order_date: date | None
    #: Mean days between sales over the last two years (None with fewer than two).
    order_interval_days: float | None

    @property
    def average_order_cents(self) -> int | None:
        return round(self.revenue_12m_cents / self.orders_12m) if self.orders_12m else None


async def purchases(session: AsyncSession, principal: Principal, account_id: uuid.UUID,
                    today: date) -> Purchases:
    year = Period.trailing(today, 365)
    o = sold_orders(principal, Period(year.previous().start, today)).where(
        col(Order.account_id) == account_id).subquery()
    this_year = o.c.order_date >= year.start
    stmt = sa.select(
        sa.func.sum(sa.case((this_year, o.c.total_cents), else_=0)),
        sa.func.sum(sa.case((this_year, 0), else_=o.c.total_cents)),
        sa.func.sum(sa.case((this_year, 1), else_=0)),
        sa.func.min(o.c.order_date), sa.func.max(o.c.order_date), sa.func.count(),
    )
    rev, prior, n12, first, last, n = (await session.execute(stmt)).one()
    interval = (last - first).days / (n - 1) if n and n > 1 else None
    return Purchases(int(rev or 0), int(prior or 0), int(n12 or 0), first, last, interval)


@dataclass(frozen=True)
class ProductHabit:
    product_id: uuid.UUID
    orders: int
    quantity: int
    revenue_cents: int
    first_date: date
    last_date: date

    @property
    def interval_days(self) -> float | None:
        """Mean days between orders holding the product (None below three orders)."""
        if self.orders < 3:
            return None
        return (self.last_date - self.first_date).days / (self.orders - 1)

    @property
    def usual_quantity(self) -> int:
        return max(1, round(self.quantity / self.orders))


async def product_habits(session: AsyncSession, principal: Principal, account_id: uuid.UUID,
                         today: date, days: int = 365) -> list[ProductHabit]:
    """What the account bought in the last `days`, per product, most often bought first."""
    o = sold_orders(principal, Period.trailing(today, days)).where(
        col(Order.account_id) == account_id).subquery()
    stmt = (
        sa.select(col(OrderLine.product_id), sa.func.count(sa.distinct(o.c.id)),
                  sa.func.sum(col(OrderLine.quantity)), sa.func.sum(col(OrderLine.line_total_cents)),
                  sa.func.min(o.c.order_date), sa.func.max(o.c.order_date))
        .join(o, o.c.id == col(OrderLine.order_id))
        .group_by(col(OrderLine.product_id))
    )
    habits = [ProductHabit(p, int(n), int(q), int(v), first, last)
              for p, n, q, v, first, last in (await session.execute(stmt)).all()]
    habits.sort(key=lambda h: (-h.orders, -h.revenue_cents, str(h.product_id)))
    return habits


@dataclass(frozen=True)
class Replenishment:
    habit: ProductHabit
    days_since_last: int
    due_in_days: int


def replenishments(habits: list[ProductHabit], today: date,
                   due_share: float = 0.9) -> list[Replenishment]:
    """Products bought on a cycle whose next purchase is due: days since the last one
    ≥ 90% of the usual interval. Most overdue (relative to the cycle) first."""
    due = []
    for h in habits:
        interval = h.interval_days
        since = (today - h.last_date).days
        if interval and since >= due_share * interval:
            due.append((since / interval, Replenishment(h, since, round(interval - since))))
    due.sort(key=lambda x: (-x[0], str(x[1].habit.product_id)))
    return [r for _, r in due]


def case_flag(row: Row, today: date) -> str | None:
    """Why an open case is flagged in the screen pop, or None."""
    if row["status"] is CaseStatus.CLOSED:
        return None
    age = (today - row["opened_at"].date()).days
    if row["category"] in FLAG_CATEGORIES or row["priority"] is CasePriority.HIGH \
            or row["status"] is CaseStatus.ESCALATED or age <= RECENT_CASE_DAYS:
        when = "today" if age <= 0 else "yesterday" if age == 1 else f"{age} days ago"
        what = row["category"].value.replace("_", " ")
        article = "an" if what[0] in "aeiou" else "a"
        return f"complained about {article} {what} {when}"
    return None


async def cases(session: AsyncSession, principal: Principal, account_id: uuid.UUID,
                today: date) -> list[Row]:
    """Open cases, flagged ones first, newest first within each group."""
    stmt = _mine(Case, principal, account_id).where(col(Case.status) != CaseStatus.CLOSED).order_by(
        col(Case.opened_at).desc(), col(Case.id))
    rows = list((await session.execute(stmt)).mappings())
    return sorted(rows, key=lambda r: case_flag(r, today) is None)


async def visit_notes(session: AsyncSession, principal: Principal, account_id: uuid.UUID,
                      today: date, limit: int = 3) -> list[Row]:
    stmt = _mine(VisitNote, principal, account_id).where(
        col(VisitNote.visited_at) < _end_of(today)).order_by(
        col(VisitNote.visited_at).desc(), col(VisitNote.id)).limit(limit)
    return list((await session.execute(stmt)).mappings())


async def open_tasks(session: AsyncSession, principal: Principal, account_id: uuid.UUID,
                     today: date, limit: int = 20) -> list[Row]:
    """Tasks not done by the end of `today` (done later, or not yet)."""
    stmt = _mine(Task, principal, account_id).where(
        sa.or_(col(Task.done).is_(False), col(Task.done_at) >= _end_of(today))).order_by(
        col(Task.due_date), col(Task.id)).limit(limit)
    return list((await session.execute(stmt)).mappings())


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def next_birthday(birthday: date, today: date) -> date:
    """The next month/day of `birthday` on or after `today` (29 February → 28th)."""
    for year in (today.year, today.year + 1):
        try:
            d = birthday.replace(year=year)
        except ValueError:
            d = date(year, 2, 28)
        if d >= today:
            return d
    raise AssertionError("unreachable")


async def upcoming_birthdays(session: AsyncSession, principal: Principal,
                             account_id: uuid.UUID, today: date,
                             days: int = 30) -> list[tuple[Row, date]]:
    stmt = _mine(Contact, principal, account_id).where(col(Contact.birthday).is_not(None))
    found = [(r, next_birthday(r["birthday"], today))
             for r in (await session.execute(stmt)).mappings()]
    soon = [(r, d) for r, d in found if d <= today + timedelta(days=days)]
    return sorted(soon, key=lambda x: (x[1], x[0]["last_name"]))
