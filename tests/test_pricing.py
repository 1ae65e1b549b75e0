"""Line amounts: integer arithmetic that rounds exactly as Decimal's ROUND_HALF_EVEN."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import given
from hypothesis import strategies as st

from schema.orders.pricing import line_total


def _decimal_total(quantity: int, price: int, discount_bp: int) -> int:
    net = Decimal(quantity) * Decimal(price) * (Decimal(10_000 - discount_bp) / Decimal(10_000))
    return int(net.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@given(st.integers(-10**6, 10**6), st.integers(-10**9, 10**9), st.integers(0, 10_000))
def test_line_total_rounds_half_even_like_decimal(quantity: int, price: int, bp: int) -> None:
    assert line_total(quantity, price, bp) == _decimal_total(quantity, price, bp)


def test_halves_go_to_the_even_cent() -> None:
    assert line_total(1, 1, 5_000) == 0   # 0.5 → 0
    assert line_total(3, 1, 5_000) == 2   # 1.5 → 2
    assert line_total(5, 1, 5_000) == 2   # 2.5 → 2
    assert line_total(-3, 1, 5_000) == -2  # -1.5 → -2
    assert line_total(7, 1999, 1_250) == 12_244  # 12243.625 → 12244
