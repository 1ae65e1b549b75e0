"""Column values ⇄ JSON wire values, derived from a table's columns.

Wire names are the camelCase column names, which are also the GraphQL field names.
Enum values travel as their GraphQL names (upper case).
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa


class CodecError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


#: Recently seen ids, both ways. A push batch names the same accounts, products and
#: users in most of its records; `uuid.UUID(text)` and `str(uuid)` are a few µs each in
#: pure Python, a dict hit a tenth of that. Bounded by clearing: entries are immutable.
_UUIDS: dict[str, uuid.UUID] = {}
_TEXTS: dict[uuid.UUID, str] = {}
#: Likewise timestamps: a batch's rows share one instant.
_DATETIMES: dict[datetime, str] = {}
_CACHE_MAX = 8192
#: A UUID's own text, as `str` writes it. Nothing looser: `uuid.UUID` reads its digits
#: with `int(_, 16)`, which also takes `_`, a sign, spaces and non-ASCII digits, and the
#: text cached here is what every user is sent for that id.
_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_uuid(v: Any) -> uuid.UUID:
    """A wire id (text) as a UUID; ValueError when it is not one."""
    if isinstance(v, uuid.UUID):
        return v
    parsed = _UUIDS.get(v) if isinstance(v, str) else None
    if parsed is None:
        if not isinstance(v, str):
            raise ValueError("expected a UUID string")
        parsed = uuid.UUID(v)
        if len(_UUIDS) >= _CACHE_MAX:
            _UUIDS.clear()
        _UUIDS[v] = parsed
        if _CANONICAL.fullmatch(v):  # the text `str` would make: skip making it again
            if len(_TEXTS) >= _CACHE_MAX:
                _TEXTS.clear()
            _TEXTS[parsed] = v
    return parsed


def _parse_date(v: Any) -> date:
    if isinstance(v, date) and not isinstance(v, datetime):
        return v
    if not isinstance(v, str):
        raise ValueError("expected an ISO date string YYYY-MM-DD")
    return date.fromisoformat(v)


def parse_datetime(v: Any) -> datetime:
    if isinstance(v, datetime):
        parsed = v
    elif isinstance(v, str):
        parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
    else:
        raise ValueError("expected an ISO 8601 timestamp")
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a time zone (e.g. a trailing Z)")
    return parsed.astimezone(UTC)


def _format_datetime(v: datetime | str) -> str:
    # A str is already wire text: the pull formats timestamps in SQL (`sync.pull`).
    if isinstance(v, str):
        return v
    text = _DATETIMES.get(v)
    if text is None:
        text = v.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if len(_DATETIMES) >= _CACHE_MAX:
            _DATETIMES.clear()
        _DATETIMES[v] = text
    return text


def _format_uuid(v: uuid.UUID | str) -> str:
    # Text read by the pull: canonical already (PostgreSQL) or 32 hex digits (SQLite).
    if isinstance(v, str):
        return v if len(v) == 36 else f"{v[:8]}-{v[8:12]}-{v[12:16]}-{v[16:20]}-{v[20:]}"
    text = _TEXTS.get(v)
    if text is None:
        text = str(v)
        if len(_TEXTS) >= _CACHE_MAX:
            _TEXTS.clear()
        _TEXTS[v] = text
    return text


def _format_date(v: date | str) -> str:
    return v if isinstance(v, str) else v.isoformat()


def _parse_int(bits: int, least: int | None = None, most: int | None = None,
               ) -> Callable[[Any], int]:
    """Integers that fit the column (`bits` wide, signed), the same on every database:
    SQLite would store a 64-bit value in an INTEGER column that PostgreSQL refuses. The
    column's `info` may narrow that (`least`, `most`) to what its CHECK constraint allows,
    so a bad value is this field's error, not a refused batch."""
    low = -(1 << (bits - 1)) if least is None else max(least, -(1 << (bits - 1)))
    high = (1 << (bits - 1)) - 1 if most is None else min(most, (1 << (bits - 1)) - 1)

    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            if not (isinstance(v, float) and v.is_integer()):
                raise ValueError("expected an integer")
            v = int(v)
        if not low <= v <= high:
            raise ValueError(f"out of range ({low}..{high})")
        return v

    return parse


def _parse_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("expected a number")
    return float(v)


def _parse_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("expected true or false")
    return v


def _parse_str(max_length: int | None) -> Callable[[Any], str]:
    def parse(v: Any) -> str:
        if not isinstance(v, str):
            raise ValueError("expected a string")
        if max_length is not None and len(v) > max_length:
            raise ValueError(f"at most {max_length} characters")
        return v

    return parse


def _enum_codec(enum_cls: type[enum.Enum]) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    names = ", ".join(m.name for m in enum_cls)

    def parse(v: Any) -> Any:
        if isinstance(v, enum_cls):
            return v
        if isinstance(v, str):
            if v in enum_cls.__members__:
                return enum_cls[v]
            try:
                return enum_cls(v.lower())
            except ValueError:
                pass
        raise ValueError(f"expected one of {names}")

    def dump(v: Any) -> Any:
        return v.name if isinstance(v, enum_cls) else enum_cls(v).name

    return parse, dump


@dataclass(frozen=True)
class FieldCodec:
    column: str
    wire: str
    parse: Callable[[Any], Any]
    dump: Callable[[Any], Any]
    nullable: bool


def _identity(v: Any) -> Any:
    return v


def codec_for(column: sa.Column[Any]) -> FieldCodec:
    t = column.type
    if isinstance(t, sa.types.TypeDecorator):
        t = t.impl_instance  # AutoString, UTCDateTime: decide by what they store
    parse: Callable[[Any], Any]
    dump: Callable[[Any], Any] = _identity
    if isinstance(t, sa.Enum) and t.enum_class is not None:
        parse, dump = _enum_codec(t.enum_class)
    elif isinstance(t, sa.Uuid):
        parse, dump = parse_uuid, _format_uuid
    elif isinstance(t, sa.Boolean):
        parse = _parse_bool
    elif isinstance(t, sa.Integer):
        bits = 64 if isinstance(t, sa.BigInteger) else 16 if isinstance(t, sa.SmallInteger) else 32
        parse = _parse_int(bits, column.info.get("least"), column.info.get("most"))
    elif isinstance(t, sa.Float):
        parse = _parse_float
    elif isinstance(t, sa.Date):
        parse, dump = _parse_date, _format_date
    elif isinstance(t, sa.DateTime):
        parse, dump = parse_datetime, _format_datetime
    elif isinstance(t, sa.String):
        parse = _parse_str(t.length)
    elif isinstance(t, sa.JSON):
        parse = _identity
    else:  # pragma: no cover - a new column type must choose its codec deliberately
        raise TypeError(f"no wire codec for {column.table.name}.{column.name}: {t!r}")
    return FieldCodec(column.name, camel(column.name), parse, dump, bool(column.nullable))


@dataclass(frozen=True)
class _DumpPlan:
    plain: list[tuple[str, str]]
    converted: list[tuple[str, str, Callable[[Any], Any]]]


class TableCodec:
    """Encodes rows of one table to wire dicts and decodes wire dicts to column values."""

    def __init__(self, table: sa.Table, exclude: frozenset[str] = frozenset()) -> None:
        self.table = table
        self.fields = [codec_for(c) for c in table.columns if c.name not in exclude]
        self.by_wire = {f.wire: f for f in self.fields}
        self.by_column = {f.column: f for f in self.fields}
        self._plans: dict[frozenset[str], _DumpPlan] = {}

    def dump(self, row: Mapping[str, Any] | sa.RowMapping,
             omit: frozenset[str] = frozenset()) -> dict[str, Any]:
        """A row (dict or result mapping) as a wire dict, without the `omit` columns.

        The hot path of every pull page: values that travel as they are copy in one
        comprehension; only the others (ids, timestamps, enums) call their codec.
        """
        plan = self._plans.get(omit)
        if plan is None:
            plan = self._plans[omit] = _DumpPlan(
                [(f.column, f.wire) for f in self.fields
                 if f.column not in omit and f.dump is _identity],
                [(f.column, f.wire, f.dump) for f in self.fields
                 if f.column not in omit and f.dump is not _identity])
        out = {wire: row[column] for column, wire in plan.plain}
        for column, wire, dump in plan.converted:
            v = row[column]
            out[wire] = None if v is None else dump(v)
        return out

    def dump_value(self, column: str, value: Any) -> Any:
        return None if value is None else self.by_column[column].dump(value)

    def parse(self, data: dict[str, Any], allowed: frozenset[str] | None = None) -> dict[str, Any]:
        """Wire dict → column values. Unknown or disallowed fields raise CodecError."""
        out: dict[str, Any] = {}
        for wire, value in data.items():
            f = self.by_wire.get(wire)
            if f is None or (allowed is not None and f.column not in allowed):
                raise CodecError(wire, f"unknown or read-only field '{wire}'")
            if value is None:
                if not f.nullable:
                    raise CodecError(wire, f"'{wire}' may not be null")
                out[f.column] = None
                continue
            try:
                out[f.column] = f.parse(value)
            except (ValueError, TypeError) as exc:
                raise CodecError(wire, f"'{wire}': {exc}") from None
        return out
