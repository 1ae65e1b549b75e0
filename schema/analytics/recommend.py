"""Cross-sell for one account: products that go with what it buys and it does not buy yet.

The rules come from the company-wide basket model (schema.analytics.models): A → C where
the account bought A in the last `RECENT_DAYS` days and bought no C in the last year,
with confidence ≥ 10% and lift ≥ 1.5. Each product keeps its strongest rule, ranked by
lift x unit margin (the margin only ranks, it is never shown to reps). Active products
only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.analytics.baskets import Rule
from schema.analytics.customer360 import ProductHabit
from schema.analytics.models import basket_model
from schema.catalog.tables import Product

RECENT_DAYS = 90
MIN_CONFIDENCE = 0.1
MIN_LIFT = 1.5


@dataclass(frozen=True)
class Recommendation:
    product_id: uuid.UUID
    #: The account's product that predicts it (the rule's antecedent).
    because_id: uuid.UUID
    rule: Rule
    score: float


async def recommend(session: AsyncSession, habits: list[ProductHabit], today: date,
                    limit: int = 5) -> list[Recommendation]:
    """`habits`: the account's purchases of the last year (customer360.product_habits),
    already read through the caller's scope."""
    bought = {h.product_id for h in habits}
    recent = {h.product_id for h in habits if (today - h.last_date).days < RECENT_DAYS}
    model = await basket_model(session, today)
    rules = [r for r in model.rules_from(recent) if r.consequent_id not in bought
             and r.confidence >= MIN_CONFIDENCE and r.lift >= MIN_LIFT]
    if not rules:
        return []
    candidates = sorted({r.consequent_id for r in rules})
    stmt = sa.select(col(Product.id), col(Product.unit_price_cents) - col(Product.unit_cost_cents)
                     ).where(col(Product.id).in_(candidates), col(Product.active).is_(True),
                             col(Product.deleted).is_(False))
    margin = {p: max(int(m), 0) for p, m in (await session.execute(stmt)).all()}
    best: dict[uuid.UUID, Recommendation] = {}
    for r in rules:
        if r.consequent_id not in margin:
            continue
        rec = Recommendation(r.consequent_id, r.antecedent_id, r, r.lift * margin[r.consequent_id])
        if r.consequent_id not in best or (rec.score, rec.rule.confidence) > (
                best[r.consequent_id].score, best[r.consequent_id].rule.confidence):
            best[r.consequent_id] = rec
    ranked = sorted(best.values(), key=lambda x: (-x.score, -x.rule.confidence, str(x.product_id)))
    return ranked[:limit]
