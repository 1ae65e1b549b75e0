"""`fieldsync jobs daily`: follow-up tasks and lead routing, idempotent.

One unit of work: birthday and purchase-anniversary tasks for the next `days_ahead`
days (schema.jobs.reminders) inserted through the one write path, so they sync to the
account owner's devices like any task; then unrouted qualified leads are given to reps
(schema.jobs.routing). Then, in a unit of work of its own (the first run rebuilds every
month, which should not hold up the reps' pushes on SQLite), the monthly sales rollups
are brought up to date (schema.analytics.rollup: the months and days whose orders changed
since the last run are recomputed). Running it twice, or after missed days, creates nothing twice and
leaves the rollups as they are.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from schema.analytics.rollup import RefreshReport, refresh_rollups
from schema.bulk import insert_rows
from schema.enums import TaskKind
from schema.jobs.reminders import anniversary_tasks, birthday_tasks, existing_keys, new_rows
from schema.jobs.routing import apply_routing, plan_routing

#: Birthdays and anniversaries this many days ahead get their task now (due on the day).
DAYS_AHEAD = 7


class UnitsOfWork(Protocol):
    def write(self) -> AbstractAsyncContextManager[AsyncSession]: ...


@dataclass(frozen=True)
class DailyReport:
    today: date
    days_ahead: int
    birthday_tasks: int
    anniversary_tasks: int
    #: Tasks the rules asked for that existed already (earlier runs, the seed).
    already_there: int
    leads_routed: int
    leads_unroutable: int
    rollups: RefreshReport | None = None

    def __str__(self) -> str:
        return (f"{self.today}: {self.birthday_tasks} birthday and {self.anniversary_tasks} "
                f"anniversary tasks created ({self.already_there} already there); "
                f"{self.leads_routed} leads routed, {self.leads_unroutable} left unrouted"
                + (f"; {self.rollups}" if self.rollups else ""))


async def run_daily(db: UnitsOfWork, today: date, days_ahead: int = DAYS_AHEAD,
                    actor_id: uuid.UUID | None = None) -> DailyReport:
    async with db.write() as session:
        birthdays = await birthday_tasks(session, today, days_ahead)
        anniversaries = await anniversary_tasks(session, today, days_ahead)
        wanted = birthdays + anniversaries
        existing = await existing_keys(session, (r["dedupe_key"] for r in wanted))
        rows = new_rows(wanted, existing)
        if rows:
            await insert_rows(session, "task", rows, actor_id)
        plan = await plan_routing(session, lock=True)
        await apply_routing(session, plan, actor_id)
    async with db.write() as session:
        rollups = await refresh_rollups(session, today)
    return DailyReport(
        today=today, days_ahead=days_ahead,
        birthday_tasks=sum(1 for r in rows if r["kind"] is TaskKind.BIRTHDAY),
        anniversary_tasks=sum(1 for r in rows if r["kind"] is TaskKind.ANNIVERSARY),
        already_there=len(wanted) - len(rows),
        leads_routed=len(plan.assignments), leads_unroutable=len(plan.unroutable),
        rollups=rollups,
    )
