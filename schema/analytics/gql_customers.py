"""GraphQL types for customers: best customers and RFM segments."""

from __future__ import annotations

import base64
import enum
import json
import uuid
from datetime import date

import sqlalchemy as sa
import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from schema.analytics import gql_common as G
from schema.analytics.customers import CustomerRank, TopCustomers
from schema.analytics.models import rfm_model
from schema.analytics.rfm import SEGMENT_RULES, RfmScore, RfmWindow, Segment, segment_counts
from schema.graphql import types as T
from schema.graphql.pagination import Connection, Edge, PageInfo
from schema.graphql.scalars import Cents

RfmSegment = strawberry.enum(Segment, name="RfmSegment",
                             description="Named RFM segments; see `customerSegments.rules`.")


@strawberry.enum(description="What `topCustomers` ranks by.")
class CustomerRanking(enum.Enum):
    REVENUE = "revenue"
    MARGIN = "margin"
    ORDERS = "orders"


@strawberry.type(description="One customer's place in a ranking.")
class RankedCustomer:
    rank: int
    account_id: strawberry.ID
    revenue_cents: Cents
    order_count: int
    last_order_date: date
    revenue_share: float = strawberry.field(description="Of the revenue of every customer "
                                            "in the ranking.")
    cumulative_revenue_share: float = strawberry.field(
        description="This customer and every one ranked above it (the Pareto curve).")
    _margin: strawberry.Private[int | None]

    @strawberry.field
    async def account(self, info: Info) -> T.Account | None:
        return await G.account(info, G.uid(self.account_id))

    @strawberry.field(description="Revenue minus cost of the goods; managers and admins only.")
    def margin_cents(self) -> Cents | None:
        return None if self._margin is None else Cents(self._margin)

    @strawberry.field(description="Margin over revenue; managers and admins only.")
    def margin_rate(self) -> float | None:
        if self._margin is None or not self.revenue_cents:
            return None
        return self._margin / self.revenue_cents


@strawberry.type(name="TopCustomers", description="The best customers of a period.")
class TopCustomersResult:
    period: G.DateRange
    by: CustomerRanking
    customers: list[RankedCustomer]
    customer_count: int = strawberry.field(description="Customers who bought in the period.")
    revenue_cents: Cents
    margin_cents: Cents | None = strawberry.field(description="Managers and admins only.")
    top10pct_revenue_share: float | None = strawberry.field(
        name="top10PctRevenueShare", description="Revenue share of the top 10% of customers "
        "by revenue (the 'top 10% make about 65%' check).")
    top30pct_revenue_share: float | None = strawberry.field(name="top30PctRevenueShare")


def top_customers_result(result: TopCustomers, costs: bool) -> TopCustomersResult:
    total = result.revenue_cents

    def ranked(c: CustomerRank) -> RankedCustomer:
        return RankedCustomer(
            rank=c.rank, account_id=strawberry.ID(str(c.account_id)),
            revenue_cents=Cents(c.revenue_cents), order_count=c.order_count,
            last_order_date=c.last_order_date,
            revenue_share=c.revenue_cents / total if total else 0.0,
            cumulative_revenue_share=c.cumulative_revenue_cents / total if total else 0.0,
            _margin=c.margin_cents if costs else None)

    return TopCustomersResult(
        period=G.date_range(result.period), by=CustomerRanking(result.by.value),
        customers=[ranked(c) for c in result.customers], customer_count=result.customer_count,
        revenue_cents=Cents(total),
        margin_cents=Cents(total - result.cost_cents) if costs else None,
        top10pct_revenue_share=result.top10_revenue_cents / total if total else None,
        top30pct_revenue_share=result.top30_revenue_cents / total if total else None)


@strawberry.type(name="RfmScore",
                 description="An account's RFM scores (1-5, company-wide quintiles).")
class RfmScoreType:
    account_id: strawberry.ID
    segment: RfmSegment  # type: ignore[valid-type]
    r: int
    f: int
    m: int
    recency_days: int = strawberry.field(description="Days since the last sale.")
    frequency: int = strawberry.field(description="Sales (orders) in the window.")
    monetary_cents: Cents = strawberry.field(description="Revenue in the window.")
    first_order_date: date
    last_order_date: date

    @strawberry.field(description='The three scores as text, e.g. "545".')
    def score(self) -> str:
        return f"{self.r}{self.f}{self.m}"

    @strawberry.field
    async def account(self, info: Info) -> T.Account | None:
        return await G.account(info, G.uid(self.account_id))


async def account_rfm_score(info: Info, account_id: strawberry.ID) -> RfmScoreType | None:
    """For an `Account.rfmScore` field (`Account.segment` already names the channel): the
    account's scores as of yesterday, from the company-wide model; no statement once the
    model is fitted, however many accounts a page shows. Only call it for an account the
    caller already sees."""
    key = G.required_uid(account_id)
    model = await G.serialized(info, lambda: rfm_model(info.context.session, G.today()))
    score = model.scores.get(key)
    return None if score is None else rfm_score(score)


def rfm_score(s: RfmScore) -> RfmScoreType:
    return RfmScoreType(account_id=strawberry.ID(str(s.account_id)), segment=s.segment,
                        r=s.r, f=s.f, m=s.m, recency_days=s.recency_days,
                        frequency=s.frequency, monetary_cents=Cents(s.monetary_cents),
                        first_order_date=s.first_order_date, last_order_date=s.last_order_date)


@strawberry.type(description="One named segment among the accounts you can see.")
class SegmentSummary:
    segment: RfmSegment  # type: ignore[valid-type]
    rule: str
    account_count: int
    account_share: float
    revenue_cents: Cents = strawberry.field(description="Revenue of its members in the window.")
    revenue_share: float


@strawberry.type(description="RFM window and how each segment is defined.")
class RfmRules:
    as_of: date
    window_start: date = strawberry.field(description="F and M count sales from this day.")
    lookback_start: date = strawberry.field(description="Accounts without a sale since this "
                                            "day are lost and not scored.")
    scoring: str
    segments: list[str]


SCORING = ("Each score is 1 + floor(5 * (rank - 1) / n) over every scored account of the "
           "company (SQL RANK, ties share the lowest rank), so 5 is the best fifth.")


def rfm_rules(window: RfmWindow) -> RfmRules:
    return RfmRules(as_of=window.as_of, window_start=window.start,
                    lookback_start=window.lookback_start, scoring=SCORING,
                    segments=[f"{s.name}: {rule}" for s, rule in SEGMENT_RULES])



@strawberry.type(description="RFM segments of the accounts you can see.")
class CustomerSegments:
    rules: RfmRules
    account_count: int
    revenue_cents: Cents
    segments: list[SegmentSummary]
    _members: strawberry.Private[list[RfmScore]]

    @strawberry.field(description="Scored accounts, highest monetary value first.")
    def members(self, info: Info, segment: RfmSegment | None = None,  # type: ignore[valid-type]
                first: int | None = 50, after: str | None = None) -> Connection[RfmScoreType]:
        ctx = info.context
        size = ctx.max_page if first is None else G.limit_of(first, "first", ctx.max_page)
        rows = [s for s in self._members if segment is None or s.segment is Segment(segment)]
        start = 0
        if after:
            last = _cursor(after)
            start = next((i for i, s in enumerate(rows)
                          if (s.monetary_cents, s.account_id) < last), len(rows))
        page = rows[start:start + size]
        edges = [Edge(cursor=_encode(s), node=rfm_score(s)) for s in page]
        return Connection(edges=edges, page_info=PageInfo(
            has_next_page=start + size < len(rows),
            end_cursor=edges[-1].cursor if edges else None),
            _count=sa.select(sa.literal(len(rows))), _session=ctx.session)


def _encode(score: RfmScore) -> str:
    raw = json.dumps([score.monetary_cents, str(score.account_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _cursor(value: str) -> tuple[int, uuid.UUID]:
    try:
        monetary, account = json.loads(base64.urlsafe_b64decode(value.encode()))
        return int(monetary), uuid.UUID(account)
    except Exception:
        raise GraphQLError("invalid `after` cursor", extensions={"code": "BAD_CURSOR"}) from None


def customer_segments(window: RfmWindow, members: list[RfmScore]) -> CustomerSegments:
    """`members`: the caller's scored accounts, ranked (schema.analytics.rfm.ranked)."""
    counts = segment_counts(members)
    accounts = len(members)
    revenue = sum(c.monetary_cents for c in counts)
    rules = dict(SEGMENT_RULES)
    return CustomerSegments(
        rules=rfm_rules(window), account_count=accounts, revenue_cents=Cents(revenue),
        segments=[SegmentSummary(segment=c.segment, rule=rules[c.segment],
                                 account_count=c.accounts,
                                 account_share=c.accounts / accounts if accounts else 0.0,
                                 revenue_cents=Cents(c.monetary_cents),
                                 revenue_share=c.monetary_cents / revenue if revenue else 0.0)
                  for c in counts],
        _members=members)
