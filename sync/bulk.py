"""Bulk inserts for the write path: COPY on PostgreSQL, Core `executemany` elsewhere.

A push stores a few hundred rows per batch (orders, their lines, change-log rows,
mutation results). Through the ORM's bulk path or plain `executemany` each row costs
tens of microseconds of Python in SQLAlchemy and psycopg; psycopg's COPY writes rows in
C, and in binary format for a third of what text format costs (no formatting and
escaping of ids, numbers and timestamps). Values go through each column type's own bind
processor first (UTC timestamps, enum names, JSON), so COPY stores exactly what an
INSERT would (`tests/test_bulk.py`). Binary COPY needs values of the column's type, as the write path
has them (parsed by the codec or made by the engine): an id as a UUID, not its text. It
applies no Python-side column defaults: rows must give every column that has one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

#: Below this many rows an INSERT is as cheap as setting up a COPY.
COPY_MIN_ROWS = 8

_Processor = Callable[[Any], Any] | None


async def insert(session: AsyncSession, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT `rows` into `table` in the session's transaction, one statement per set of
    keys (rows that name different columns cannot share one)."""
    if not rows:
        return
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    conn = await session.connection()
    for names, group in groups.items():
        if conn.dialect.name == "postgresql" and len(group) >= COPY_MIN_ROWS:
            await _copy(conn, table, names, group)
        else:
            # Core, not `session.execute`: a mapped table would take the ORM's bulk path.
            await conn.execute(sa.insert(table), list(group))


async def _copy(conn: AsyncConnection, table: sa.Table, names: tuple[str, ...],
                rows: Sequence[Mapping[str, Any]]) -> None:
    procs = _processors(conn.dialect, table, names)
    prep = conn.dialect.identifier_preparer
    quoted = ", ".join(prep.quote(n) for n in names)
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    # A JSON column stores None as JSON null (unless `none_as_null`), as INSERT does:
    # its processor sees None too. Other processors keep None as SQL NULL.
    convert = [(i, p, _json_null(table.c[names[i]])) for i, p in enumerate(procs)
               if p is not None]
    types = _binary_types(table, names)
    sql = f"COPY {prep.format_table(table)} ({quoted}) FROM STDIN"
    if types is not None:
        sql += " (FORMAT BINARY)"
    dbapi = conn.dialect.loaded_dbapi
    try:
        async with driver.cursor() as cur, cur.copy(sql) as copy:
            if types is not None:
                copy.set_types(types)
            for row in rows:
                values = [row[n] for n in names]
                for i, p, none_too in convert:
                    if values[i] is not None or none_too:
                        values[i] = p(values[i])
                await copy.write_row(values)
    except dbapi.Error as exc:
        # As SQLAlchemy raises it for any other statement: callers tell a constraint the
        # rules missed from a lost connection by its class (`sa.exc.IntegrityError`, …).
        raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi.Error) from exc


def _json_null(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.JSON) and not column.type.none_as_null


@functools.cache
def _processors(dialect: sa.Dialect, table: sa.Table, names: tuple[str, ...]) -> list[_Processor]:
    return [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]


#: PostgreSQL's type for each SQLAlchemy type whose values, after the column's bind
#: processor, psycopg writes in binary (a non-native enum is a VARCHAR of its names).
_BINARY: tuple[tuple[type[sa.types.TypeEngine[Any]], str], ...] = (
    (sa.Uuid, "uuid"), (sa.BigInteger, "int8"), (sa.SmallInteger, "int2"),
    (sa.Integer, "int4"), (sa.Boolean, "bool"), (sa.Date, "date"), (sa.String, "text"),
)


@functools.cache
def _binary_types(table: sa.Table, names: tuple[str, ...]) -> list[str] | None:
    """The PostgreSQL types of a binary COPY of these columns, or None to COPY as text
    (a column type not listed)."""
    out = []
    for name in names:
        t = table.c[name].type
        if isinstance(t, sa.types.TypeDecorator):
            t = t.impl_instance
        if isinstance(t, sa.DateTime):
            out.append("timestamptz" if t.timezone else "timestamp")
        elif isinstance(t, sa.JSON) and type(t) is sa.JSON:
            out.append("json")
        elif isinstance(t, sa.Float):  # PostgreSQL's FLOAT(p) is real up to 24 bits
            out.append("float4" if isinstance(t, sa.REAL) or (t.precision or 53) <= 24
                       else "float8")
        else:
            kind = next((pg for cls, pg in _BINARY if isinstance(t, cls)), None)
            if kind is None:
                return None
            out.append(kind)
    return out
