"""The write path's bulk insert (COPY on PostgreSQL, executemany on SQLite) stores what a
plain INSERT would, also for rows that name different columns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from server.db import Database
from sync import bulk
from sync.model import table_of
from sync.tables import Change, Conflict

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
