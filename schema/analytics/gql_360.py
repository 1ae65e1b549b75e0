"""`customer360`: the screen pop before a call or a visit.

Every block is a field that runs its own one or two statements only when asked for, so a
phone's "balance and open cases" query costs three statements and the full screen about
fifteen, whatever the account's history (tests/test_analytics_360.py pins the bound).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from schema.analytics import customer360 as S
from schema.analytics import gql_common as G
from schema.analytics.gql_baskets import ProductRecommendation, recommendation
from schema.analytics.gql_customers import RfmScoreType, rfm_score
from schema.analytics.models import rfm_model
from schema.analytics.recommend import recommend
from schema.enums import AccountStatus
from schema.graphql import types as T
from schema.graphql.scalars import Cents
from schema.graphql.typegen import build

R = TypeVar("R")


@strawberry.type(description="What the account bought in the last 12 months (and before).")
class PurchaseSummary:
    revenue_12m_cents: Cents = strawberry.field(name="revenue12mCents")
    revenue_prior_12m_cents: Cents = strawberry.field(name="revenuePrior12mCents")
    revenue_change: float | None = strawberry.field(description="Against the 12 months before.")
    order_count_12m: int = strawberry.field(name="orderCount12m")
    average_order_cents: Cents | None
    order_interval_days: float | None = strawberry.field(
        description="Mean days between orders over the last two years.")
    first_order_date: date | None
    last_order_date: date | None


@strawberry.type(description="A product the account buys, and how it buys it.")
class ProductPurchase:
    order_count: int
    quantity: int
    revenue_cents: Cents
    last_order_date: date
    usual_interval_days: float | None = strawberry.field(
        description="Mean days between its orders (needs three orders).")
    usual_quantity: int
    product_id: strawberry.ID

    @strawberry.field
    async def product(self, info: Info) -> T.Product | None:
        return await G.product(info, G.uid(self.product_id))


def product_purchase(h: S.ProductHabit) -> ProductPurchase:
    return ProductPurchase(order_count=h.orders, quantity=h.quantity,
                           revenue_cents=Cents(h.revenue_cents), last_order_date=h.last_date,
                           usual_interval_days=h.interval_days, usual_quantity=h.usual_quantity,
                           product_id=strawberry.ID(str(h.product_id)))


@strawberry.type(description="A product due again on the account's own reorder cycle.")
class Replenishment:
    purchase: ProductPurchase
    days_since_last: int
    due_in_days: int = strawberry.field(description="Negative: overdue by that many days.")
    suggested_quantity: int


@strawberry.type
class CaseAlert:
    case: T.Case
    flagged: bool
    headline: str | None = strawberry.field(
        description='e.g. "complained about a wrong invoice 3 days ago".')


@strawberry.type
class ContactBirthday:
    contact: T.Contact
    date: date
    in_days: int
    turns: int | None = strawberry.field(description="Age on the day, when the year is known.")


@strawberry.type(description="One account seen from every side, before a call or a visit.")
class Customer360:
    account: T.Account
    as_of: date
    _id: strawberry.Private[uuid.UUID]
    _row: strawberry.Private[S.Row]
    _memo: strawberry.Private[dict[str, Any]]

    async def _once(self, info: Info, name: str, work: Callable[[Any], Awaitable[R]]) -> R:
        async def run() -> R:
            if name not in self._memo:
                self._memo[name] = await work(info.context.session)
            value: R = self._memo[name]
            return value

        return await G.serialized(info, run)

    async def _money(self, info: Info) -> S.Money:
        return await self._once(info, "money", lambda s: S.money(
            s, info.context.me, self._id, self.as_of))

    async def _habits(self, info: Info) -> list[S.ProductHabit]:
        return await self._once(info, "habits", lambda s: S.product_habits(
            s, info.context.me, self._id, self.as_of))

    @strawberry.field(description="Open invoice amounts (accounting's balance).")
    async def balance_cents(self, info: Info) -> Cents:
        return Cents((await self._money(info)).balance_cents)

    @strawberry.field
    async def overdue_cents(self, info: Info) -> Cents:
        return Cents((await self._money(info)).overdue_cents)

    @strawberry.field
    async def oldest_overdue_days(self, info: Info) -> int | None:
        return (await self._money(info)).oldest_overdue_days

    @strawberry.field(description="Open invoices, overdue first (oldest due date first).")
    async def open_invoices(self, info: Info) -> list[T.Invoice]:
        return [build(T.Invoice, r) for r in (await self._money(info)).open_invoices]

    @strawberry.field(description="Open invoices plus orders not invoiced yet (as the credit "
                      "check counts them).")
    async def exposure_cents(self, info: Info) -> Cents:
        return Cents((await self._money(info)).exposure_cents)

    @strawberry.field(description="0: no credit line.")
    def credit_limit_cents(self) -> Cents:
        return Cents(int(self._row["credit_limit_cents"]))

    @strawberry.field(description="Days an invoice may stay unpaid.")
    def payment_terms_days(self) -> int:
        return int(self._row["payment_terms_days"])

    @strawberry.field(description="Credit limit minus exposure; null without a credit line.")
    async def credit_available_cents(self, info: Info) -> Cents | None:
        limit = int(self._row["credit_limit_cents"])
        if not limit:
            return None
        return Cents(limit - (await self._money(info)).exposure_cents)

    @strawberry.field(description="Orders are refused while the account is on hold.")
    def on_hold(self) -> bool:
        return bool(self._row["status"] is AccountStatus.ON_HOLD)

    @strawberry.field(description="Most recent first, any status.")
    async def recent_orders(self, info: Info, first: int = 5) -> list[T.Order]:
        n = G.limit_of(first, "first", 50)
        rows = await self._once(info, f"orders{n}", lambda s: S.recent_orders(
            s, info.context.me, self._id, self.as_of, n))
        return [build(T.Order, r) for r in rows]

    @strawberry.field
    async def purchases(self, info: Info) -> PurchaseSummary:
        p = await self._once(info, "purchases", lambda s: S.purchases(
            s, info.context.me, self._id, self.as_of))
        prior = p.revenue_prior_12m_cents
        return PurchaseSummary(
            revenue_12m_cents=Cents(p.revenue_12m_cents), revenue_prior_12m_cents=Cents(prior),
            revenue_change=(p.revenue_12m_cents - prior) / prior if prior else None,
            order_count_12m=p.orders_12m,
            average_order_cents=None if p.average_order_cents is None
            else Cents(p.average_order_cents),
            order_interval_days=p.order_interval_days, first_order_date=p.first_order_date,
            last_order_date=p.last_order_date)

    @strawberry.field(description="What the account buys most often (last 12 months).")
    async def top_products(self, info: Info, first: int = 5) -> list[ProductPurchase]:
        n = G.limit_of(first, "first", 50)
        return [product_purchase(h) for h in (await self._habits(info))[:n]]

    @strawberry.field(description="Likely next purchases from the account's reorder cycles: "
                      "products it buys regularly whose usual interval has (nearly) passed.")
    async def next_purchases(self, info: Info, first: int = 10) -> list[Replenishment]:
        n = G.limit_of(first, "first", 50)
        due = S.replenishments(await self._habits(info), self.as_of)[:n]
        return [Replenishment(purchase=product_purchase(r.habit),
                              days_since_last=r.days_since_last, due_in_days=r.due_in_days,
                              suggested_quantity=r.habit.usual_quantity) for r in due]

    @strawberry.field(description="Products that fit what it buys: company-wide basket rules "
                      "from its recent purchases to products it does not buy yet.")
    async def recommendations(self, info: Info, first: int = 5) -> list[ProductRecommendation]:
        n = G.limit_of(first, "first", 50)
        habits = await self._habits(info)
        recs = await self._once(info, f"recs{n}", lambda s: recommend(s, habits, self.as_of, n))
        return [recommendation(r) for r in recs]

    @strawberry.field(description="RFM scores and segment, as of the day before `asOf`.")
    async def segment(self, info: Info) -> RfmScoreType | None:
        model = await self._once(info, "rfm", lambda s: rfm_model(s, self.as_of))
        score = model.scores.get(self._id)
        return None if score is None else rfm_score(score)

    @strawberry.field(description="Open cases, flagged ones (billing complaints, escalated, "
                      "high priority or from the last week) first.")
    async def open_cases(self, info: Info) -> list[CaseAlert]:
        rows = await self._once(info, "cases", lambda s: S.cases(
            s, info.context.me, self._id, self.as_of))
        out = []
        for r in rows:
            flag = S.case_flag(r, self.as_of)
            out.append(CaseAlert(case=build(T.Case, r), flagged=flag is not None, headline=flag))
        return out

    @strawberry.field(description="Latest visits first.")
    async def visit_notes(self, info: Info, first: int = 3) -> list[T.VisitNote]:
        n = G.limit_of(first, "first", 50)
        rows = await self._once(info, f"visits{n}", lambda s: S.visit_notes(
            s, info.context.me, self._id, self.as_of, n))
        return [build(T.VisitNote, r) for r in rows]

    @strawberry.field(description="Tasks not done yet (as of `asOf`), soonest due first.")
    async def open_tasks(self, info: Info) -> list[T.Task]:
        rows = await self._once(info, "tasks", lambda s: S.open_tasks(
            s, info.context.me, self._id, self.as_of))
        return [build(T.Task, r) for r in rows]

    @strawberry.field(description="Contacts whose birthday is within `days` days.")
    async def upcoming_birthdays(self, info: Info, days: int = 30) -> list[ContactBirthday]:
        n = G.limit_of(days, "days", 366)
        found = await self._once(info, f"birthdays{n}", lambda s: S.upcoming_birthdays(
            s, info.context.me, self._id, self.as_of, n))
        return [ContactBirthday(contact=build(T.Contact, r), date=d,
                                in_days=(d - self.as_of).days,
                                turns=None if r["birthday"].year <= 1900
                                else d.year - r["birthday"].year)
                for r, d in found]


async def customer_360(info: Info, account_id: uuid.UUID, as_of: date) -> Customer360 | None:
    row = await G.serialized(info, lambda: S.account_row(info.context.session,
                                                         info.context.me, account_id))
    if row is None:
        return None
    return Customer360(account=build(T.Account, row), as_of=as_of, _id=account_id, _row=row,
                       _memo={})
