"""Manager analytics in GraphQL: thin resolvers over the services of schema/analytics.

Every field reads through the caller's scope (a rep: their accounts; a manager: their
team's; an admin: everything). Margins and costs are null for reps, as unit costs are on
`Product`. Examples to paste into the explorer: docs/manager-queries.md.
"""

from __future__ import annotations

from datetime import date

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from schema.analytics import gql_common as G
from schema.analytics.baskets import basket_analysis
from schema.analytics.customer360 import product_habits
from schema.analytics.customers import RankBy, top_customers
from schema.analytics.funnel import lead_funnel
from schema.analytics.gql_360 import Customer360, customer_360
from schema.analytics.gql_baskets import (
    BasketAnalysis,
    ProductRecommendation,
    recommendation,
)
from schema.analytics.gql_baskets import basket_analysis as basket_analysis_type
from schema.analytics.gql_customers import (
    CustomerRanking,
    CustomerSegments,
    RfmScoreType,
    TopCustomersResult,
    customer_segments,
    rfm_score,
    top_customers_result,
)
from schema.analytics.gql_leads import LeadFunnel, LeadRouting, lead_routing
from schema.analytics.gql_leads import lead_funnel as lead_funnel_type
from schema.analytics.gql_sales import (
    SalesComparison,
    SalesDimension,
    SalesFilterInput,
    SalesVolumeResult,
    sales_volume_result,
)
from schema.analytics.models import rfm_scores
from schema.analytics.recommend import recommend
from schema.analytics.rfm import RfmScore, RfmWindow, ranked, visible
from schema.analytics.volume import Compare, Dimension, Wanted, sales_volume
from schema.jobs.routing import RoutingPlan, plan_routing
from schema.scope import team_ids


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description="Everything about one account before a call or a visit, "
                      "in one request. Null when the account is not in your scope.")
    async def customer360(self, info: Info, account_id: strawberry.ID,
                          as_of: date | None = None) -> Customer360 | None:
        key = G.required_uid(account_id)
        return await customer_360(info, key, as_of or G.today())

    @strawberry.field(description="The best customers of a period (default: the last 365 "
                      "days), by revenue, margin (managers and admins) or order count.")
    async def top_customers(self, info: Info, period: G.PeriodInput | None = None,
                            by: CustomerRanking = CustomerRanking.REVENUE,
                            territory_id: strawberry.ID | None = None,
                            limit: int = 20) -> TopCustomersResult:
        me = info.context.me
        if by is CustomerRanking.MARGIN and not me.privileged:
            raise GraphQLError("ranking by margin needs a manager or an admin",
                               extensions={"code": "FORBIDDEN"})
        result = await G.scoped(info, lambda scope: top_customers(
            info.context.session, scope, G.period_of(period), RankBy(by.value),
            G.uid(territory_id), G.limit_of(limit)))
        return top_customers_result(result, me.privileged)

    @strawberry.field(description="RFM scores and named segments of your accounts, as of "
                      "`asOf` (default today) over a window of `months` months. Scores are "
                      "fitted on the whole company and kept a few minutes.")
    async def customer_segments(self, info: Info, as_of: date | None = None,
                                months: int = 12) -> CustomerSegments:
        window = RfmWindow(as_of or G.today(), G.months_of(months))
        session, me = info.context.session, info.context.me

        async def run() -> list[RfmScore]:
            model = await rfm_scores(session, window)
            return ranked(model.scores.values(), await visible(session, me))

        return customer_segments(window, await G.serialized(info, run))

    @strawberry.field(description="One account's RFM scores and segment (null: not in your "
                      "scope, or no sale in the lookback).")
    async def customer_segment(self, info: Info, account_id: strawberry.ID,
                               as_of: date | None = None, months: int = 12,
                               ) -> RfmScoreType | None:
        window = RfmWindow(as_of or G.today(), G.months_of(months))
        key = G.required_uid(account_id)
        session, me = info.context.session, info.context.me

        async def run() -> RfmScore | None:
            if not await visible(session, me, key):
                return None
            return (await rfm_scores(session, window)).scores.get(key)

        score = await G.serialized(info, run)
        return None if score is None else rfm_score(score)

    @strawberry.field(description="Association rules between products bought in the same "
                      "order, over your orders of the period (default: the last 90 days).")
    async def basket_analysis(self, info: Info, period: G.PeriodInput | None = None,
                              min_support: float = 0.01, min_confidence: float = 0.2,
                              min_lift: float = 1.0, limit: int = 50) -> BasketAnalysis:
        if not 0 < min_support <= 1 or not 0 <= min_confidence <= 1:
            raise GraphQLError("minSupport must be in (0, 1] and minConfidence in [0, 1]",
                               extensions={"code": "BAD_THRESHOLD"})
        result = await G.scoped(info, lambda scope: basket_analysis(
            info.context.session, scope, G.period_of(period, 90), min_support,
            min_confidence, min_lift, G.limit_of(limit)))
        return basket_analysis_type(result)

    @strawberry.field(description="Products that fit what the account buys (company-wide "
                      "basket rules); empty when the account is not in your scope.")
    async def recommendations(self, info: Info, account_id: strawberry.ID, limit: int = 5,
                              as_of: date | None = None) -> list[ProductRecommendation]:
        key = G.required_uid(account_id)
        day = as_of or G.today()
        n = G.limit_of(limit, "limit", 50)

        async def run() -> list[ProductRecommendation]:
            session, me = info.context.session, info.context.me
            habits = await product_habits(session, me, key, day)
            return [recommendation(r) for r in await recommend(session, habits, day, n)] \
                if habits else []

        return await G.serialized(info, run)

    @strawberry.field(description="Revenue, quantity, orders, customers and margin grouped "
                      "by the dimensions asked for, with the previous period alongside and a "
                      "forecast of the next months.")
    async def sales_volume(self, info: Info,
                           group_by: list[SalesDimension] | None = None,  # type: ignore[valid-type]
                           period: G.PeriodInput | None = None,
                           filter: SalesFilterInput | None = None,
                           compare_to: SalesComparison = Compare.PREVIOUS_PERIOD,  # type: ignore[valid-type]
                           limit: int = 500) -> SalesVolumeResult:
        me = info.context.me
        filters = (filter or SalesFilterInput()).to_filter()
        dims = [Dimension(d) for d in group_by or ()]
        asked = G.selected(info)
        wanted = Wanted(rows=bool({"rows", "groupCount"} & asked), totals="totals" in asked,
                        previous_rows=bool({"rows.previous", "rows.revenueChange"} & asked),
                        previous_totals="previousTotals" in asked,
                        quantities=("rows.current.quantity" in asked, "totals.quantity" in asked,
                                    "rows.previous.quantity" in asked,
                                    "previousTotals.quantity" in asked),
                        customers=("rows.current.customerCount" in asked,
                                   "totals.customerCount" in asked,
                                   "rows.previous.customerCount" in asked,
                                   "previousTotals.customerCount" in asked))
        result = await G.scoped(info, lambda scope: sales_volume(
            info.context.session, scope, G.period_of(period), dims, filters, Compare(compare_to),
            G.limit_of(limit, "limit", 5000), wanted))
        return sales_volume_result(result, filters, me.privileged)

    @strawberry.field(description="Leads created in the period (default: the last 365 days): "
                      "counts, stage conversion, time in stage, by source and owner. "
                      "`teamId`: only the leads of that manager's reps.")
    async def lead_funnel(self, info: Info, period: G.PeriodInput | None = None,
                          team_id: strawberry.ID | None = None) -> LeadFunnel:
        result = await G.serialized(info, lambda: lead_funnel(
            info.context.session, info.context.me, G.period_of(period), G.uid(team_id)))
        return lead_funnel_type(result)

    @strawberry.field(description="The lead routing rule and what the next daily run would "
                      "assign (a manager sees the assignments to their own team).", permission_classes=[G.ManagersOnly])
    async def lead_routing(self, info: Info) -> LeadRouting:
        ctx = info.context
        plan = await G.serialized(info, lambda: plan_routing(ctx.session))
        if not ctx.me.is_admin:
            # The pool is every manager's, but who else gets a lead, and their workload,
            # is another team's business.
            team = set((await ctx.session.execute(team_ids(ctx.me))).scalars())
            plan = RoutingPlan([a for a in plan.assignments if a.rep_id in team],
                               plan.unroutable)
        return lead_routing(plan)
