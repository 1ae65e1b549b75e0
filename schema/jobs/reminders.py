"""Follow-up tasks for the account owner: contact birthdays and purchase anniversaries.

Rules (crm-domain.md §4.6), for dates from today to `days_ahead` days later:

* BIRTHDAY: a contact of a not-inactive account with an owner has a birthday (29 February
  counts on the 28th in other years). Key `birthday:<contact id>:<year>`.
* ANNIVERSARY: the yearly anniversary of an account's first purchase (its
  `customer_since`, else its first sale) for an account that bought in the last 365 days,
  a thank-you. Key `anniversary:<account id>:<year>`.

The keys are the ones the demo seed writes, and `task.dedupe_key` is unique: a key that
exists (even on a task the rep deleted) is never created again, so reruns and catch-up
runs after a missed day create nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.accounts.tables import Account, Contact
from schema.activities.tables import Task
from schema.analytics.common import SOLD
from schema.analytics.customer360 import next_birthday
from schema.enums import AccountStatus, TaskKind
from schema.orders.tables import Order

KEY_CHUNK = 500


def month_days(today: date, days_ahead: int) -> dict[int, date]:
    """month*100+day → the date it falls on in the window (29 Feb → 28 Feb when needed)."""
    out: dict[int, date] = {}
    for n in range(days_ahead + 1):
        d = today + timedelta(days=n)
        out[d.month * 100 + d.day] = d
        if d.month == 2 and d.day == 28 and (d + timedelta(days=1)).month == 3:
            out[229] = d
    return out


def _month_day(column: Any) -> Any:
    return sa.cast(sa.extract("month", column), sa.Integer) * 100 + sa.cast(
        sa.extract("day", column), sa.Integer)


def _owned_accounts() -> list[Any]:
    return [col(Account.deleted).is_(False), col(Account.owner_id).is_not(None),
            col(Account.status) != AccountStatus.INACTIVE]


async def birthday_tasks(session: AsyncSession, today: date, days_ahead: int,
                         ) -> list[dict[str, Any]]:
    window = month_days(today, days_ahead)
    stmt = (
        sa.select(col(Contact.id), col(Contact.first_name), col(Contact.last_name),
                  col(Contact.birthday), col(Contact.account_id),
                  col(Account.owner_id), col(Account.name))
        .join(Account, col(Account.id) == col(Contact.account_id))
        .where(col(Contact.deleted).is_(False), col(Contact.birthday).is_not(None),
               _month_day(col(Contact.birthday)).in_(sorted(window)), *_owned_accounts())
    )
    rows = []
    for r in (await session.execute(stmt)).mappings():
        due = next_birthday(r["birthday"], today)
        rows.append({
            "title": f"Birthday: {r['first_name']} {r['last_name']} ({r['name']})"[:200],
            "description": "Send wishes (an e-card only if the contact agreed to emails).",
            "kind": TaskKind.BIRTHDAY, "due_date": due, "assignee_id": r["owner_id"],
            "account_id": r["account_id"], "contact_id": r["id"],
            "dedupe_key": f"birthday:{r['id']}:{due.year}",
        })
    return rows


async def anniversary_tasks(session: AsyncSession, today: date, days_ahead: int,
                            ) -> list[dict[str, Any]]:
    window = month_days(today, days_ahead)
    sold = [col(Order.account_id) == col(Account.id), col(Order.status).in_(SOLD),
            col(Order.deleted).is_(False)]
    first_sale = sa.select(sa.func.min(col(Order.order_date))).where(*sold).scalar_subquery()
    since = sa.func.coalesce(col(Account.customer_since), first_sale)
    recent = sa.select(sa.literal(1)).where(
        *sold, col(Order.order_date) > today - timedelta(days=365)).exists()
    stmt = (
        sa.select(col(Account.id), col(Account.name), col(Account.owner_id), since.label("since"))
        .where(*_owned_accounts(), _month_day(since).in_(sorted(window)), recent)
    )
    rows = []
    for r in (await session.execute(stmt)).mappings():
        first: date = r["since"]
        due = next_birthday(first, today)
        years = due.year - first.year
        if years < 1:
            continue
        rows.append({
            "title": f"Thank {r['name']}: {years} year{'s' if years > 1 else ''} as a customer"
            [:200],
            "description": f"First purchase on {first.isoformat()}. Say thank you.",
            "kind": TaskKind.ANNIVERSARY, "due_date": due, "assignee_id": r["owner_id"],
            "account_id": r["id"], "contact_id": None,
            "dedupe_key": f"anniversary:{r['id']}:{due.year}",
        })
    return rows


async def existing_keys(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    """The keys a task (deleted ones included) already carries."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    for i in range(0, len(wanted), KEY_CHUNK):
        stmt = sa.select(col(Task.dedupe_key)).where(
            col(Task.dedupe_key).in_(wanted[i:i + KEY_CHUNK]))
        found.update(k for k in (await session.execute(stmt)).scalars() if k)
    return found


def new_rows(rows: Iterable[dict[str, Any]], existing: set[str]) -> list[dict[str, Any]]:
    out, seen = [], set(existing)
    for r in rows:
        if r["dedupe_key"] not in seen:
            seen.add(r["dedupe_key"])
            out.append(r)
    return out

