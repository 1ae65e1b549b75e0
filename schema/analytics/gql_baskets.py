"""GraphQL types for basket analysis and the recommendations built on it."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from schema.analytics import gql_common as G
from schema.analytics.baskets import Baskets, Rule
from schema.analytics.recommend import Recommendation
from schema.graphql import types as T


@strawberry.type(description="Customers who buy the antecedent also buy the consequent.")
class AssociationRule:
    support: float = strawberry.field(description="Share of orders with both products.")
    confidence: float = strawberry.field(description="Share of orders with the antecedent "
                                         "that also hold the consequent.")
    lift: float = strawberry.field(description="Confidence over the consequent's own "
                                   "support; above 1 means they go together.")
    leverage: float
    conviction: float | None = strawberry.field(description="Null means infinite.")
    antecedent_support: float
    consequent_support: float
    order_count: int = strawberry.field(description="Orders with both products.")
    antecedent_id: strawberry.ID
    consequent_id: strawberry.ID

    @strawberry.field
    async def antecedent(self, info: Info) -> T.Product | None:
        return await G.product(info, G.uid(self.antecedent_id))

    @strawberry.field
    async def consequent(self, info: Info) -> T.Product | None:
        return await G.product(info, G.uid(self.consequent_id))


def association_rule(r: Rule) -> AssociationRule:
    return AssociationRule(
        support=r.support, confidence=r.confidence, lift=r.lift, leverage=r.leverage,
        conviction=r.conviction, antecedent_support=r.antecedent_support,
        consequent_support=r.consequent_support, order_count=r.both,
        antecedent_id=strawberry.ID(str(r.antecedent_id)),
        consequent_id=strawberry.ID(str(r.consequent_id)))


@strawberry.type(description="Product pairs bought together in the orders you can see.")
class BasketAnalysis:
    period: G.DateRange
    order_count: int = strawberry.field(description="Orders (transactions) analysed.")
    frequent_product_count: int = strawberry.field(
        description="Products in at least `minSupport` of the orders.")
    min_order_count: int = strawberry.field(description="`minSupport` as a number of orders.")
    rules: list[AssociationRule] = strawberry.field(description="Strongest lift first.")


def basket_analysis(b: Baskets) -> BasketAnalysis:
    return BasketAnalysis(period=G.date_range(b.period), order_count=b.transactions,
                          frequent_product_count=len(b.frequent), min_order_count=b.min_count,
                          rules=[association_rule(r) for r in b.rules])


@strawberry.type(description="A product that fits what the account already buys; "
                 "best first (by lift and margin).")
class ProductRecommendation:
    rule: AssociationRule = strawberry.field(description="The company-wide rule behind it.")
    product_id: strawberry.ID
    because_id: strawberry.ID

    @strawberry.field
    async def product(self, info: Info) -> T.Product | None:
        return await G.product(info, G.uid(self.product_id))

    @strawberry.field(description="The account's product that predicts it.")
    async def because(self, info: Info) -> T.Product | None:
        return await G.product(info, G.uid(self.because_id))


def recommendation(r: Recommendation) -> ProductRecommendation:
    # The ranking score (lift x unit margin) stays server-side: with the lift it would
    # reveal unit costs to reps.
    return ProductRecommendation(rule=association_rule(r.rule),
                                 product_id=strawberry.ID(str(r.product_id)),
                                 because_id=strawberry.ID(str(r.because_id)))
