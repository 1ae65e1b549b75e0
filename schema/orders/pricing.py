"""Order pricing and credit: pure functions over prefetched facts.

Money is integer cents; discounts are basis points (1/100 of a percent). Line amounts
round half-even once per line, so totals are reproducible on any client.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class ProductFacts:
    id: uuid.UUID
    active: bool
    unit_price_cents: int
    unit_cost_cents: int
    name: str


@dataclass(frozen=True)
class PriceFacts:
    product_id: uuid.UUID
    account_id: uuid.UUID | None
    unit_price_cents: int | None
    discount_bp: int | None
    valid_from: date
    valid_to: date | None


def unit_price(product: ProductFacts, account_id: uuid.UUID, on: date,
               entries: list[PriceFacts]) -> tuple[int, int]:
    """(unit price, list discount in bp) for `product` at `account_id` on day `on`.

    Prices and discounts are chosen separately: the price is the most specific entry
    valid that day (the account's own beats the general one, then the latest
    `valid_from`), falling back to the product's list price; the discount likewise,
    applied on top of that price. So a promotion never undoes a year's price list.
    """
    valid = [e for e in entries
             if e.product_id == product.id and e.valid_from <= on
             and (e.valid_to is None or on < e.valid_to)
             and e.account_id in (None, account_id)]

    def best(kind: list[PriceFacts]) -> PriceFacts | None:
        return max(kind, key=lambda e: (e.account_id is not None, e.valid_from), default=None)

    price = best([e for e in valid if e.unit_price_cents is not None])
    discount = best([e for e in valid if e.discount_bp is not None])
    # `best` only sees entries that set the value, so a chosen entry's value is never None.
    unit = product.unit_price_cents if price is None or price.unit_price_cents is None \
        else price.unit_price_cents
    bp = 0 if discount is None or discount.discount_bp is None else discount.discount_bp
    return unit, bp


def line_total(quantity: int, unit_price_cents: int, discount_bp: int) -> int:
    """quantity * price * (1 - discount), rounded half-even to a cent.

    Exact integer arithmetic (the Decimal version cost more than the rest of pricing a
    line); `tests/test_pricing.py` checks it against Decimal's ROUND_HALF_EVEN."""
    whole, rest = divmod(quantity * unit_price_cents * (10_000 - discount_bp), 10_000)
    # Floor division, so `rest` is in [0, 10000) for any sign: round up above half, and
    # at exactly half towards the even neighbour.
    if rest > 5_000 or (rest == 5_000 and whole % 2):
        whole += 1
    return whole


def credit_available(limit_cents: int, exposure_cents: int) -> int | None:
    """Credit left, or None when the account has no credit line configured (limit 0)."""
    if limit_cents <= 0:
        return None
    return limit_cents - exposure_cents
