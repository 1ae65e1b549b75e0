from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, NewType

import dateutil.parser
import strawberry
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.scalars import JSON

#: Money in integer minor units. A NewType, mapped to a GraphQL scalar in SCALARS.
Cents = NewType("Cents", int)
#: Amounts are stored as 64-bit integers; anything wider is refused at the door.
CENTS_MIN, CENTS_MAX = -(2**63), 2**63 - 1


def _parse_cents(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Cents must be an integer number of minor units (e.g. 1999 for 19.99)")
    if not CENTS_MIN <= value <= CENTS_MAX:
        raise ValueError("Cents must fit in 64 bits")
    return value


#: Dates and times a client may send. Nothing in a sales CRM lies outside these years,
#: and resolvers may then do calendar arithmetic (windows, lookbacks, year shifts) on any
#: input without overflowing `date`'s range (years 1 to 9999).
MIN_YEAR, MAX_YEAR = 1000, 8999


def _bounded(parse: Callable[[str], Any], name: str) -> Callable[[object], Any]:
    def parse_value(value: object) -> Any:
        if not isinstance(value, str):
            raise StrawberryInputCoercionError(f'Value cannot represent a {name}: "{value}". '
                                               "Expected a string.")
        try:
            parsed = parse(value)
        except ValueError as e:
            raise StrawberryInputCoercionError(
                f'Value cannot represent a {name}: "{value}". {e}') from None
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            raise StrawberryInputCoercionError(
                f'Value cannot represent a {name}: "{value}". Years {MIN_YEAR} to {MAX_YEAR} only.')
        return parsed

    return parse_value


SCALARS: dict[object, Any] = {
    # Strawberry's own Date and DateTime (same names, descriptions and wire format), with
    # the year range above.
    dt.date: strawberry.scalar(name="Date", description="Date (isoformat)",
                               serialize=dt.date.isoformat,
                               parse_value=_bounded(dt.date.fromisoformat, "Date")),
    dt.datetime: strawberry.scalar(name="DateTime", description="Date with time (isoformat)",
                                   serialize=dt.datetime.isoformat,
                                   parse_value=_bounded(dateutil.parser.isoparse, "DateTime")),
    Cents: strawberry.scalar(
        name="Cents",
        description="Money in integer minor units (cents); may exceed 32 bits.",
        serialize=int,
        parse_value=_parse_cents,
    ),
}

__all__ = ["JSON", "SCALARS", "Cents"]
