"""Lead routing: qualified leads nobody owns go to a rep of their territory.

The rule is data (`RULE`), shown to managers and admins by the `leadRouting` query and
applied by the daily job. Routing is a trusted server-side write through the sync
engine's write path (`sync.writer`): the lead's version goes up, its scope key moves from
the unrouted pool to the rep, and the change log carries it to the rep's devices.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.enums import LeadStatus, Role
from schema.identity.tables import User
from schema.leads.tables import Lead
from schema.registry import registry
from schema.scope import UNROUTED_KEY
from sync.hlc import HybridClock
from sync.model import dialect_name, table_of
from sync.writer import ChangeSet, RowWrite, flush

RULE = (
    "Every day (`fieldsync jobs daily`) each lead that is QUALIFIED, has no owner and has a "
    "territory is given to a rep: (1) the candidates are the active reps whose territory is "
    "the lead's territory, or, when there are none, the active reps of the managers whose "
    "territory it is (a region's team); (2) the candidate with the fewest open leads (NEW, "
    "CONTACTED or QUALIFIED) gets it, ties going to the first email in alphabetical order; "
    "each assignment counts at once, so a batch is spread over the territory. Leads without "
    "a territory or without a candidate rep stay in the unrouted pool, which every manager "
    "sees."
)
OPEN = (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED)
_clock = HybridClock("jobs")


@dataclass(frozen=True)
class Rep:
    id: uuid.UUID
    email: str
    territory_id: uuid.UUID | None
    team_territory_id: uuid.UUID | None


@dataclass(frozen=True)
class Assignment:
    lead_id: uuid.UUID
    version: int
    rep_id: uuid.UUID
    territory_id: uuid.UUID
    #: The rep's open leads before this one.
    open_leads: int


@dataclass(frozen=True)
class RoutingPlan:
    assignments: list[Assignment]
    #: Qualified unowned leads left in the pool (no territory, or no rep there).
    unroutable: list[uuid.UUID]


async def _reps(session: AsyncSession) -> list[Rep]:
    manager = table_of(User).alias("manager")
    stmt = (
        sa.select(col(User.id), col(User.email), col(User.territory_id), manager.c.territory_id)
        .outerjoin(manager, manager.c.id == col(User.manager_id))
        .where(col(User.role) == Role.REP, col(User.active).is_(True))
        .order_by(col(User.email))
    )
    return [Rep(*row) for row in (await session.execute(stmt)).all()]


async def plan_routing(session: AsyncSession, lock: bool = False) -> RoutingPlan:
    """Who gets which unrouted qualified lead (three statements; `lock` for the job)."""
    leads_stmt = (
        sa.select(col(Lead.id), col(Lead.version), col(Lead.territory_id))
        .where(col(Lead.owner_id).is_(None), col(Lead.status) == LeadStatus.QUALIFIED,
               col(Lead.deleted).is_(False))
        .order_by(col(Lead.created_at), col(Lead.id))
    )
    if lock and dialect_name(session) == "postgresql":
        leads_stmt = leads_stmt.with_for_update()  # SQLite: the write transaction is exclusive
    leads = (await session.execute(leads_stmt)).all()
    if not leads:
        return RoutingPlan([], [])
    reps = await _reps(session)
    counts_stmt = (
        sa.select(col(Lead.owner_id), sa.func.count())
        .where(col(Lead.owner_id).in_([r.id for r in reps]), col(Lead.status).in_(OPEN),
               col(Lead.deleted).is_(False))
        .group_by(col(Lead.owner_id))
    )
    open_leads: dict[uuid.UUID, int] = {r.id: 0 for r in reps}
    open_leads.update({o: int(n) for o, n in (await session.execute(counts_stmt)).all()
                       if o is not None})
    assignments: list[Assignment] = []
    unroutable: list[uuid.UUID] = []
    for lead_id, version, territory in leads:
        candidates = [r for r in reps if r.territory_id == territory] or [
            r for r in reps if r.team_territory_id == territory]
        if territory is None or not candidates:
            unroutable.append(lead_id)
            continue
        rep = min(candidates, key=lambda r: (open_leads[r.id], r.email))
        assignments.append(Assignment(lead_id, version, rep.id, territory, open_leads[rep.id]))
        open_leads[rep.id] += 1
    return RoutingPlan(assignments, unroutable)


async def apply_routing(session: AsyncSession, plan: RoutingPlan,
                        actor_id: uuid.UUID | None = None) -> None:
    """Write the plan's owner changes through the write path."""
    spec = registry["lead"]
    changes = ChangeSet(actor_id=actor_id)
    hlc = _clock.now()
    for a in plan.assignments:
        values: dict[str, Any] = {"owner_id": a.rep_id}
        changes.add(RowWrite(spec, a.lead_id, "update", values, {"owner_id": None},
                             a.version + 1, a.rep_id, UNROUTED_KEY, hlc))
    await flush(session, changes)
