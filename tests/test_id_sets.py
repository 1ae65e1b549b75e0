"""Id sets (`sync.model.among`) select exactly their rows, for every kind of value the
engine sends, and travel as one binary array parameter on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from psycopg.adapt import PyFormat
from psycopg.types.array import ListBinaryDumper

from server.db import Database
from sync import bulk
from sync.model import among, dialect_name, table_of
from sync.tables import Change

CHANGES = table_of(Change)


async def test_an_id_set_selects_exactly_its_rows(db: Database) -> None:
    ids = [uuid.uuid4() for _ in range(12)]
    rows: list[dict[str, Any]] = [
        {"seq": 20_000 + i, "entity": "account", "row_id": rid, "version": i + 1,
         "op": "upsert", "scope_key": rid, "prev_scope_key": None, "prev_holder_id": None,
         "hlc": "h", "actor_id": None, "client_id": f"device \"{i}\", {{x}}",
         "mutation_id": i, "prev": None, "at": datetime(2026, 11, 29, tzinfo=UTC)}
        for i, rid in enumerate(ids)]
    async with db.write() as session:
        await bulk.insert(session, CHANGES, rows)
    async with db.read() as session:
        dialect = dialect_name(session)

        async def seqs(column: sa.Column[Any], values: list[Any]) -> set[int]:
            stmt = sa.select(CHANGES.c.seq).where(among(dialect, column, "v"))
            return set((await session.execute(stmt, {"v": values})).scalars())

        # UUIDs (with a repeat and a stranger), text that needs quoting in an array
        # literal, integers, and the empty set.
        assert await seqs(CHANGES.c.row_id, [ids[0], ids[5], ids[5], uuid.uuid4()]) == {
            20_000, 20_005}
        assert await seqs(CHANGES.c.client_id, ['device "3", {x}', "nobody"]) == {20_003}
        assert await seqs(CHANGES.c.mutation_id, [1, 2, 99]) == {20_001, 20_002}
        assert await seqs(CHANGES.c.row_id, []) == set()
        if dialect == "postgresql":
            raw = (await session.connection()).sync_connection
            assert raw is not None
            driver = raw.connection.driver_connection
            assert isinstance(driver.adapters.get_dumper(list, PyFormat.AUTO)(list),
                              ListBinaryDumper)
