"""GraphQL types for the lead funnel and lead routing."""

from __future__ import annotations

import uuid

import strawberry
from strawberry.types import Info

from schema.analytics import gql_common as G
from schema.analytics.funnel import Funnel, LeadGroup
from schema.enums import LeadSource, LeadStatus
from schema.graphql import types as T
from schema.graphql.loaders import load_one
from schema.graphql.typegen import build
from schema.jobs.routing import RULE, RoutingPlan
from schema.leads.tables import Lead as LeadRow


@strawberry.type(description="Leads of one slice and how far they got.")
class LeadCounts:
    leads: int
    contacted: int = strawberry.field(description="Reached CONTACTED or a later stage.")
    qualified: int = strawberry.field(description="Reached QUALIFIED or CONVERTED.")
    converted: int
    disqualified: int
    conversion_rate: float | None = strawberry.field(description="converted / leads")


def lead_counts(g: LeadGroup) -> LeadCounts:
    return LeadCounts(leads=g.leads, contacted=g.contacted, qualified=g.qualified,
                      converted=g.converted, disqualified=g.disqualified,
                      conversion_rate=g.conversion_rate)


@strawberry.type
class LeadStatusCount:
    status: LeadStatus
    count: int


@strawberry.type
class FunnelStage:
    stage: LeadStatus
    reached: int
    conversion_from_previous: float | None = strawberry.field(
        description="reached / reached of the stage before.")
    median_days_in_stage: float | None = strawberry.field(
        description="From entering the stage to entering the next (finished stays only).")
    finished_stays: int


@strawberry.type
class LeadSourceCounts:
    source: LeadSource
    counts: LeadCounts


@strawberry.type
class LeadOwnerCounts:
    counts: LeadCounts
    owner_id: strawberry.ID | None = strawberry.field(description="Null: the unrouted pool.")

    @strawberry.field
    async def owner(self, info: Info) -> T.UserSummary | None:
        return await G.user(info, G.uid(self.owner_id))


@strawberry.type(description="Leads created in the period that you can see.")
class LeadFunnel:
    period: G.DateRange
    total: LeadCounts
    by_status: list[LeadStatusCount] = strawberry.field(description="Current status.")
    stages: list[FunnelStage]
    by_source: list[LeadSourceCounts]
    by_owner: list[LeadOwnerCounts]
    median_days_to_convert: float | None


def lead_funnel(f: Funnel) -> LeadFunnel:
    return LeadFunnel(
        period=G.date_range(f.period), total=lead_counts(f.total),
        by_status=[LeadStatusCount(status=s, count=n) for s, n in f.by_status.items()],
        stages=[FunnelStage(stage=s.stage, reached=s.reached,
                            conversion_from_previous=s.rate_from_previous,
                            median_days_in_stage=s.median_days, finished_stays=s.finished_stays)
                for s in f.stages],
        by_source=[LeadSourceCounts(source=s, counts=lead_counts(g))
                   for s, g in f.by_source.items()],
        by_owner=[LeadOwnerCounts(owner_id=G.gid(o), counts=lead_counts(g))
                  for o, g in f.by_owner.items()],
        median_days_to_convert=f.median_days_to_convert)


@strawberry.type(description="What the next routing run would do with one lead.")
class LeadAssignment:
    lead_id: strawberry.ID
    rep_id: strawberry.ID
    territory_id: strawberry.ID
    rep_open_leads: int = strawberry.field(description="The rep's open leads before this one.")

    @strawberry.field
    async def lead(self, info: Info) -> T.Lead | None:
        return await _lead(info, G.uid(self.lead_id))

    @strawberry.field
    async def rep(self, info: Info) -> T.UserSummary | None:
        return await G.user(info, G.uid(self.rep_id))

    @strawberry.field
    async def territory(self, info: Info) -> T.Territory | None:
        return await G.territory(info, G.uid(self.territory_id))


async def _lead(info: Info, lead_id: uuid.UUID | None) -> T.Lead | None:
    row = await load_one(info.context, LeadRow, lead_id)
    return None if row is None else build(T.Lead, row)


@strawberry.type(description="Lead routing: the rule, and what its next run would assign.")
class LeadRouting:
    rule: str
    pending: list[LeadAssignment]
    unroutable_lead_ids: list[strawberry.ID] = strawberry.field(
        description="Qualified unowned leads no rep can get (no territory, no rep there).")


def lead_routing(plan: RoutingPlan) -> LeadRouting:
    return LeadRouting(
        rule=RULE,
        pending=[LeadAssignment(lead_id=strawberry.ID(str(a.lead_id)),
                                rep_id=strawberry.ID(str(a.rep_id)),
                                territory_id=strawberry.ID(str(a.territory_id)),
                                rep_open_leads=a.open_leads) for a in plan.assignments],
        unroutable_lead_ids=[strawberry.ID(str(i)) for i in plan.unroutable])
