"""The write path's bulk insert (COPY on PostgreSQL, executemany on SQLite) stores what a
plain INSERT would, also for rows that name different columns."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from schema.enums import OrderStatus
from schema.orders.tables import Order
from server.db import Database
from sync import bulk
from sync.model import table_of
from sync.tables import Change, Conflict
from tests.conftest import World

CHANGES = table_of(Change)


def _row(seq: int, with_holder: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": 10_000 + seq, "entity": "account", "row_id": uuid.uuid4(), "version": seq,
        "op": "upsert", "scope_key": uuid.uuid4(), "prev_scope_key": None, "hlc": f"h{seq}",
        "actor_id": None, "client_id": "c", "mutation_id": seq,
        "prev": {"name": f"é {seq}", "n": [seq, None]} if seq % 2 else None,
        "at": datetime(2026, 11, 28, 9, 0, tzinfo=UTC) + timedelta(microseconds=seq)}
    if with_holder:
        row["prev_holder_id"] = uuid.uuid4()
    return row


async def test_bulk_insert_stores_what_an_insert_would(db: Database) -> None:
    rows = [_row(i, with_holder=i % 3 == 0) for i in range(1, 41)]  # > COPY_MIN_ROWS per key set
    async with db.write() as session:
        await bulk.insert(session, CHANGES, rows)
    async with db.read() as session:
        stored = {r.seq: r for r in await session.execute(
            sa.select(CHANGES).where(CHANGES.c.seq > 10_000).order_by(CHANGES.c.seq))}
    assert len(stored) == len(rows)
    for row in rows:
        got = stored[row["seq"]]._mapping
        for name, value in row.items():
            assert got[name] == value, (name, got[name], value)
        if "prev_holder_id" not in row:
            assert got["prev_holder_id"] is None



def _conflict(n: int) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "entity": "account", "row_id": uuid.uuid4(),
            "scope_key": uuid.uuid4(), "user_id": uuid.uuid4(), "client_id": "c",
            "mutation_id": n, "rule": "hlc", "fields": ["name"], "base": None,
            "server": None, "client": {"name": "x"}, "outcome": None, "resolved": False,
            "created_at": datetime(2026, 11, 28, 9, 0, tzinfo=UTC)}


async def test_a_none_in_a_json_column_is_stored_as_an_insert_stores_it(db: Database) -> None:
    # Conflict.base is a JSON column without none_as_null: INSERT stores None as JSON
    # null, not SQL NULL, and COPY must do the same.
    conflicts = table_of(Conflict)
    copied = [_conflict(n) for n in range(10)]
    inserted = _conflict(99)
    async with db.write() as session:
        await bulk.insert(session, conflicts, copied)
        await session.execute(sa.insert(conflicts), [inserted])
    async with db.read() as session:
        sql_null = dict((await session.execute(
            sa.select(conflicts.c.id, sa.cast(conflicts.c.base, sa.Text).is_(None)))).all())
    assert len(sql_null) == 11
    assert set(sql_null.values()) == {sql_null[inserted["id"]]}, sql_null


async def test_every_kind_of_column_reads_back_as_an_insert_stores_it(
        db: Database, world: World) -> None:
    """COPY (binary on PostgreSQL) and INSERT store the same values for every column kind
    of an order: ids, an enum, a date, timestamps with and without microseconds, wide
    integers, empty and non-ASCII text, and NULLs."""
    orders = table_of(Order)
    day = datetime(2026, 11, 28, 9, 30, 15, 123456, tzinfo=UTC)

    def order(n: int) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(), "version": n, "created_at": day, "updated_at": day.replace(
                microsecond=0), "deleted": n % 2 == 0, "scope_key": world.accounts["rep1a"],
            "number": None if n % 3 else f"SO-{n}", "account_id": world.accounts["rep1a"],
            "contact_id": None, "rep_id": world.users["rep1"], "order_date": date(1, 1, 1)
            if n == 1 else date(2026, 2, 28), "status": list(OrderStatus)[n % len(OrderStatus)],
            "status_reason_code": None, "status_reason": "ünïcødé ✓ \\ \t \n" if n % 2 else "",
            "subtotal_cents": 2**63 - 1, "discount_cents": -(2**63), "total_cents": n,
            "cost_cents": 0, "currency": "EUR", "po_number": None, "notes": None,
            "submitted_at": day if n % 2 else None, "confirmed_at": None}

    copied = [order(n) for n in range(1, bulk.COPY_MIN_ROWS + 3)]
    inserted = order(99)
    async with db.write() as session:
        await bulk.insert(session, orders, copied)
        await session.execute(sa.insert(orders), [inserted])
    async with db.read() as session:
        stored = {r.id: r._mapping for r in await session.execute(
            sa.select(orders).where(orders.c.id.in_([r["id"] for r in [*copied, inserted]])))}
    for row in [*copied, inserted]:
        assert dict(stored[row["id"]]) == row
