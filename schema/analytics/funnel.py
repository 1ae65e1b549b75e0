"""The lead funnel: leads created in a period, how far they got, and how long it took.

A lead *reached* a stage (NEW → CONTACTED → QUALIFIED → CONVERTED) when its stage
history or its current status is at or past it, so a lead qualified straight from NEW
counts as contacted too; DISQUALIFIED is an exit, not a stage. Time in a stage is from
entering it to entering the next one (stays not finished yet are left out), and its
median is computed in SQL with the portable row_number/count recipe.

Three statements: one grouped count (by source, owner, status and furthest stage, folded
into every breakdown in Python), stage medians, and the median days to convert.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.analytics.common import Period, days_between
from schema.enums import LeadSource, LeadStatus, Role
from schema.leads.tables import Lead, LeadStatusChange
from schema.scope import Principal, readable, team_ids
from sync.model import table_of

STAGES = (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED, LeadStatus.CONVERTED)
_RANK = {s.value: i + 1 for i, s in enumerate(STAGES)}


def _rank(column: Any) -> Any:
    return sa.case(*((column == status, rank) for status, rank in _RANK.items()), else_=0)


@dataclass
class LeadGroup:
    """Counts for one slice of the funnel (a source, an owner, or everything)."""

    leads: int = 0
    contacted: int = 0
    qualified: int = 0
    converted: int = 0
    disqualified: int = 0

    def add(self, n: int, reached: int, status: LeadStatus) -> None:
        self.leads += n
        self.contacted += n if reached >= 2 else 0
        self.qualified += n if reached >= 3 else 0
        self.converted += n if reached >= 4 else 0
        self.disqualified += n if status is LeadStatus.DISQUALIFIED else 0

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.leads if self.leads else None


@dataclass(frozen=True)
class StageStat:
    stage: LeadStatus
    reached: int
    #: Share of the leads that reached the previous stage (None for NEW).
    rate_from_previous: float | None
    median_days: float | None
    finished_stays: int


@dataclass
class Funnel:
    period: Period
    total: LeadGroup
    by_status: dict[LeadStatus, int]
    stages: list[StageStat] = field(default_factory=list)
    by_source: dict[LeadSource, LeadGroup] = field(default_factory=dict)
    by_owner: dict[uuid.UUID | None, LeadGroup] = field(default_factory=dict)
    median_days_to_convert: float | None = None


def _bounds(period: Period) -> tuple[datetime, datetime]:
    start = datetime.combine(period.start, time(), UTC)
    return start, datetime.combine(period.end + timedelta(days=1), time(), UTC)


def leads_in(principal: Principal, period: Period, team_id: uuid.UUID | None) -> sa.Select[Any]:
    start, end = _bounds(period)
    stmt = readable(sa.select(col(Lead.id)), Lead, principal).where(
        col(Lead.created_at) >= start, col(Lead.created_at) < end)
    if team_id is not None:
        manager = Principal(team_id, Role.MANAGER)
        stmt = stmt.where(col(Lead.owner_id).in_(team_ids(manager)))
    return stmt


def _median(rows: sa.Subquery, value: Any, group: Any) -> sa.Select[Any]:
    """(group, median of `value`, count) per `group` of `rows`: the middle one or two
    values by row number, averaged."""
    ranked = sa.select(
        group.label("g"), value.label("v"),
        sa.func.row_number().over(partition_by=group, order_by=value).label("rn"),
        sa.func.count().over(partition_by=group).label("n"),
    ).select_from(rows).subquery("ranked")
    middle = sa.or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2)
    return sa.select(ranked.c.g, sa.func.avg(ranked.c.v), sa.func.max(ranked.c.n)).where(
        middle).group_by(ranked.c.g)


async def lead_funnel(session: AsyncSession, principal: Principal, period: Period,
                      team_id: uuid.UUID | None = None) -> Funnel:
    ids = leads_in(principal, period, team_id)
    history = (
        sa.select(col(LeadStatusChange.lead_id),
                  sa.func.max(_rank(col(LeadStatusChange.to_status))).label("hist"))
        .where(col(LeadStatusChange.lead_id).in_(ids))
        .group_by(col(LeadStatusChange.lead_id)).subquery("h")
    )
    current = _rank(col(Lead.status))
    hist = sa.func.coalesce(history.c.hist, 0)
    reached = sa.case((hist > current, hist), else_=current)
    per_lead = (
        sa.select(col(Lead.source).label("source"), col(Lead.owner_id).label("owner"),
                  col(Lead.status).label("status"), reached.label("reached"))
        .select_from(sa.outerjoin(table_of(Lead), history, history.c.lead_id == col(Lead.id)))
        .where(col(Lead.id).in_(ids))
    ).subquery("per_lead")
    grouped = sa.select(per_lead.c.source, per_lead.c.owner, per_lead.c.status,
                        per_lead.c.reached, sa.func.count()).group_by(
        per_lead.c.source, per_lead.c.owner, per_lead.c.status, per_lead.c.reached)
    funnel = Funnel(period, LeadGroup(), {s: 0 for s in LeadStatus})
    by_source: dict[LeadSource, LeadGroup] = defaultdict(LeadGroup)
    by_owner: dict[uuid.UUID | None, LeadGroup] = defaultdict(LeadGroup)
    for source, owner, status, reach, n in (await session.execute(grouped)).all():
        status = LeadStatus(status)
        for g in (funnel.total, by_source[LeadSource(source)], by_owner[owner]):
            g.add(int(n), int(reach), status)
        funnel.by_status[status] += int(n)
    funnel.by_source = dict(sorted(by_source.items(), key=lambda kv: -kv[1].leads))
    funnel.by_owner = dict(sorted(by_owner.items(), key=lambda kv: (-kv[1].leads, str(kv[0]))))
    medians, finished = await _stage_medians(session, ids)
    reached_counts = [funnel.total.leads, funnel.total.contacted, funnel.total.qualified,
                      funnel.total.converted]
    for i, stage in enumerate(STAGES):
        rate = None if i == 0 or not reached_counts[i - 1] else \
            reached_counts[i] / reached_counts[i - 1]
        funnel.stages.append(StageStat(stage, reached_counts[i], rate, medians.get(stage.value),
                                       finished.get(stage.value, 0)))
    funnel.median_days_to_convert = await _days_to_convert(session, ids)
    return funnel


async def _stage_medians(session: AsyncSession, ids: sa.Select[Any],
                         ) -> tuple[dict[str, float], dict[str, int]]:
    h = LeadStatusChange
    following = sa.func.lead(col(h.at)).over(partition_by=col(h.lead_id), order_by=col(h.at))
    stays = (
        sa.select(col(h.to_status).label("stage"), col(h.at).label("entered"),
                  following.label("left"))
        .where(col(h.lead_id).in_(ids)).subquery("stays")
    )
    finished = sa.select(stays.c.stage, days_between(stays.c.entered, stays.c.left).label("d")
                         ).where(stays.c.left.is_not(None)).subquery("finished")
    rows = (await session.execute(_median(finished, finished.c.d, finished.c.stage))).all()
    return {g: float(v) for g, v, _ in rows}, {g: int(n) for g, _, n in rows}


async def _days_to_convert(session: AsyncSession, ids: sa.Select[Any]) -> float | None:
    converted = (
        sa.select(sa.literal(1).label("g"),
                  days_between(col(Lead.created_at), col(Lead.converted_at)).label("d"))
        .where(col(Lead.id).in_(ids), col(Lead.converted_at).is_not(None))
    ).subquery("converted")
    row = (await session.execute(_median(converted, converted.c.d, converted.c.g))).first()
    return None if row is None else float(row[1])

