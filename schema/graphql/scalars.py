from __future__ import annotations

from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON

#: Money in integer minor units. A NewType, mapped to a GraphQL scalar in SCALARS.
Cents = NewType("Cents", int)


def _parse_cents(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Cents must be an integer number of minor units (e.g. 1999 for 19.99)")
    return value


SCALARS: dict[object, Any] = {
    Cents: strawberry.scalar(
        name="Cents",
        description="Money in integer minor units (cents); may exceed 32 bits.",
        serialize=int,
        parse_value=_parse_cents,
    ),
}

__all__ = ["JSON", "SCALARS", "Cents"]
