"""The one write path: every change to a synced table goes through a `ChangeSet`.

A change set collects row writes and scope moves, then `flush()` applies them with bulk
statements, bumps each row's version and appends one change-log row per write, all in
the caller's transaction.

Sequence numbers follow commit order because they are taken from the log head's row
under its lock, which is held until commit. On SQLite the single writer holds that lock
anyway and `flush()` numbers its rows at once. On PostgreSQL `flush()` writes them with
provisional negative numbers, and a deferred trigger numbers them for good inside COMMIT
(migration 0005: `sync_seal_log`), so the lock is held for that statement and the commit
itself, never across a round trip to this process. Holding it from `flush()` on
serialised every push through its result documents, device record and the event-loop
turns between their statements: 27 ms a batch, which capped pushes at about 2,600
orders/s whatever the CPU. No commit path can skip the numbering: the database does it.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from sync import bulk
from sync.model import column_default, dialect_name, table_of, utcnow
from sync.registry import EntitySpec
from sync.tables import PROVISIONAL, Change, LogHead, ScopeKey

Op = Literal["insert", "update", "delete"]


@dataclass
class RowWrite:
    spec: EntitySpec
    row_id: uuid.UUID
    op: Op
    #: insert: every column; update: the changed columns; delete: ignored.
    values: dict[str, Any]
    #: Old values of the changed columns (None for an insert).
    prev: dict[str, Any] | None
    version: int
    scope_key: uuid.UUID
    prev_scope_key: uuid.UUID | None
    hlc: str
    children: Sequence[Mapping[str, Any]] | None = None


@dataclass
class ScopeMove:
    key: uuid.UUID
    holder_id: uuid.UUID | None
    prev_holder_id: uuid.UUID | None
    kind: str
    hlc: str


@dataclass
class ChangeSet:
    actor_id: uuid.UUID | None = None
    client_id: str | None = None
    writes: list[RowWrite] = field(default_factory=list)
    moves: list[ScopeMove] = field(default_factory=list)
    new_keys: list[ScopeKey] = field(default_factory=list)
    mutation_ids: dict[int, int] = field(default_factory=dict)  # index in writes → mutation id
    echoes: list[tuple[EntitySpec, uuid.UUID, bool]] = field(default_factory=list)
    #: One timestamp for every row the change set touches (and for results sent back).
    now: datetime = field(default_factory=utcnow)

    def add(self, write: RowWrite, mutation_id: int | None = None) -> None:
        if mutation_id is not None:
            self.mutation_ids[len(self.writes)] = mutation_id
        self.writes.append(write)

    def add_key(self, key: uuid.UUID, holder_id: uuid.UUID | None, kind: str) -> None:
        self.new_keys.append(ScopeKey(key=key, holder_id=holder_id, kind=kind))

    def move(self, move: ScopeMove) -> None:
        self.moves.append(move)

    def echo(self, spec: EntitySpec, row_id: uuid.UUID, restore: bool = False) -> None:
        """Log an unchanged row again, so devices in its scope pull its current state
        (a client library that cannot take a refusal in its push answer needs this).
        `restore` marks a row the device deleted but the server kept."""
        self.echoes.append((spec, row_id, restore))

    def __len__(self) -> int:
        return len(self.writes) + len(self.moves)


@dataclass
class _Final:
    """A row's state after all of a change set's writes to it (applied in order)."""

    spec: EntitySpec
    insert: bool
    values: dict[str, Any]
    children: Sequence[Mapping[str, Any]] | None
    replace_children: bool


def _coalesce(writes: Sequence[RowWrite]) -> dict[tuple[str, uuid.UUID], _Final]:
    """One final state per row, so several writes to a row in one batch (create then
    edit, two edits) hit the database once and in order, whatever their columns."""
    rows: dict[tuple[str, uuid.UUID], _Final] = {}
    for w in writes:
        key = (w.spec.name, w.row_id)
        f = rows.get(key)
        if f is None:
            f = rows[key] = _Final(w.spec, w.op == "insert", {}, None, False)
        if w.op == "insert":
            f.values.update(w.spec.with_defaults(w.values), deleted=False)
        elif w.op == "update":
            f.values.update(w.values)
        else:
            f.values["deleted"] = True
        f.values.update(version=w.version, scope_key=w.scope_key)
        if w.children is not None:
            if w.spec.child is None:
                raise ValueError(f"'{w.spec.name}' has no child rows")
            f.children = w.children
            f.replace_children = not f.insert  # a new parent has no children to replace
    return rows


async def _apply_rows(session: AsyncSession, writes: Sequence[RowWrite], now: datetime) -> None:
    inserts: dict[sa.Table, list[dict[str, Any]]] = defaultdict(list)
    updates: dict[tuple[sa.Table, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    children: dict[Any, tuple[list[uuid.UUID], list[dict[str, Any]]]] = {}
    for (_, row_id), f in _coalesce(writes).items():
        table = f.spec.table
        if f.insert:
            row = dict(f.values, id=row_id, updated_at=now)
            row.setdefault("created_at", now)
            inserts[table].append(row)
        else:
            values = dict(f.values, updated_at=now)
            cols = tuple(sorted(values))
            values["_id"] = row_id
            updates[(table, cols)].append(values)
        if f.children is not None and f.spec.child is not None:
            child = f.spec.child
            ids, rows = children.setdefault(child, ([], []))
            if f.replace_children:
                ids.append(row_id)
            rows.extend(_child_row(child.table, c, child.parent_column, row_id)
                        for c in f.children)

    # Rows first (children reference them), replaced children after; tables in foreign-key
    # order, since a batch may create an order before the account it names is created.
    for table in sorted(inserts, key=_dependency_rank):
        await bulk.insert(session, table, inserts[table])
    for (table, cols), rows in updates.items():
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("_id"))
            .values({c: sa.bindparam(c) for c in cols})
        )
        await session.execute(stmt, rows)
    for child, (parent_ids, rows) in children.items():
        parent = child.table.c[child.parent_column]
        if parent_ids:
            await session.execute(sa.delete(child.table).where(parent.in_(parent_ids)))
        if rows:
            await bulk.insert(session, child.table, rows)


@functools.cache
def _dependency_rank(table: sa.Table) -> int:
    return table.metadata.sorted_tables.index(table)


async def allocate_seqs(session: AsyncSession, count: int) -> int:
    """Reserve `count` sequence numbers; returns the first. Holds the log-head row lock
    until commit, which is what makes seq order equal commit order."""
    result = await session.execute(
        sa.update(LogHead)
        .where(col(LogHead.id) == 1)
        .values(last_seq=col(LogHead.last_seq) + count)
        .returning(col(LogHead.last_seq))
    )
    last = result.scalar_one()
    return int(last) - count + 1


#: Rows per block of provisional numbers: one `nextval` per flush, and the first row of
#: each block (a multiple of this) is what fires the numbering trigger.
BLOCK = 1 << 24


async def _provisional(session: AsyncSession, count: int) -> int:
    """The first of `count` provisional numbers; they run downwards from it."""
    if count >= BLOCK:
        raise ValueError(f"a change set holds at most {BLOCK - 1} log rows, not {count}")
    block = (await session.execute(sa.select(PROVISIONAL.next_value()))).scalar_one()
    return -int(block) * BLOCK


async def flush(session: AsyncSession, changes: ChangeSet) -> None:
    """Apply a change set and append its change-log rows."""
    if not len(changes) and not changes.new_keys and not changes.echoes:
        return
    now = changes.now
    holders = await _holders(session, {w.prev_scope_key for w in changes.writes
                                       if w.prev_scope_key not in (None, w.scope_key)})
    if changes.new_keys:
        await session.execute(
            sa.insert(ScopeKey),
            [{"key": k.key, "holder_id": k.holder_id, "kind": k.kind} for k in changes.new_keys],
        )
    await _apply_rows(session, changes.writes, now)
    for m in changes.moves:
        await session.execute(
            sa.update(ScopeKey).where(col(ScopeKey.key) == m.key).values(holder_id=m.holder_id)
        )
    echoed = await _echoed_rows(session, changes.echoes)
    count = len(changes) + len(echoed)
    if count == 0:
        return
    log: list[dict[str, Any]] = []
    for i, w in enumerate(changes.writes):
        log.append({
            "entity": w.spec.name, "row_id": w.row_id, "version": w.version,
            "op": "delete" if w.op == "delete" else "upsert", "scope_key": w.scope_key,
            "prev_scope_key": w.prev_scope_key if w.prev_scope_key != w.scope_key else None,
            "prev_holder_id": holders.get(w.prev_scope_key) if w.prev_scope_key else None,
            "hlc": w.hlc, "actor_id": changes.actor_id, "client_id": changes.client_id,
            "mutation_id": changes.mutation_ids.get(i),
            "prev": _json_prev(w), "at": now,
        })
    for m in changes.moves:
        # A move is logged against the holders' own keys so both sides' pulls see it.
        log.append({
            "entity": "", "row_id": m.key, "version": 0, "op": "move",
            "scope_key": m.holder_id or m.key, "prev_scope_key": m.prev_holder_id or m.key,
            "prev_holder_id": m.prev_holder_id,
            "hlc": m.hlc, "actor_id": changes.actor_id, "client_id": changes.client_id,
            "mutation_id": None, "prev": {"kind": m.kind}, "at": now,
        })
    for spec, row_id, version, scope, restore in echoed:
        log.append({
            "entity": spec.name, "row_id": row_id, "version": version,
            "op": "upsert", "scope_key": scope, "prev_scope_key": None, "prev_holder_id": None,
            "hlc": "", "actor_id": changes.actor_id, "client_id": changes.client_id,
            "mutation_id": None, "prev": {"echo": "restore" if restore else "state"},
            "at": now,
        })
    if dialect_name(session) == "postgresql":
        first, step = await _provisional(session, count), -1
    else:
        first, step = await allocate_seqs(session, count), 1
    for n, row in enumerate(log):
        row["seq"] = first + step * n
    await bulk.insert(session, table_of(Change), log)


async def _echoed_rows(session: AsyncSession,
                       echoes: Sequence[tuple[EntitySpec, uuid.UUID, bool]]
                       ) -> list[tuple[EntitySpec, uuid.UUID, int, uuid.UUID, bool]]:
    by_spec: dict[str, tuple[EntitySpec, dict[uuid.UUID, bool]]] = {}
    for spec, row_id, restore in echoes:
        by_spec.setdefault(spec.name, (spec, {}))[1][row_id] = restore
    out = []
    for spec, ids in by_spec.values():
        t = spec.table
        rows = await session.execute(sa.select(t.c.id, t.c.version, t.c.scope_key)
                                     .where(t.c.id.in_(list(ids))))
        out += [(spec, rid, version, scope, ids[rid]) for rid, version, scope in rows]
    return out


async def _holders(session: AsyncSession, keys: set[Any]) -> dict[uuid.UUID, uuid.UUID | None]:
    """Who holds each key now, i.e. before this change set's moves are applied."""
    if not keys:
        return {}
    rows = await session.execute(
        sa.select(col(ScopeKey.key), col(ScopeKey.holder_id)).where(col(ScopeKey.key).in_(keys)))
    return {key: holder for key, holder in rows}


def _child_row(table: sa.Table, values: Mapping[str, Any], parent: str,
               parent_id: uuid.UUID) -> dict[str, Any]:
    columns, own = _columns(table, parent)
    if values.keys() == own:  # every column but the parent's, as the hooks build them
        row = dict(values)
    else:
        row = {name: values[name] if name in values else column_default(col)
               for name, col in columns}
    row[parent] = parent_id
    return row


@functools.cache
def _columns(table: sa.Table, parent: str
             ) -> tuple[tuple[tuple[str, sa.Column[Any]], ...], frozenset[str]]:
    """A child table's columns, and the names of all but its parent's."""
    return (tuple((col.name, col) for col in table.columns),
            frozenset(col.name for col in table.columns if col.name != parent))


def _json_prev(w: RowWrite) -> dict[str, Any] | None:
    if w.prev is None:
        return None
    codec = w.spec.codec
    return {col: codec.dump_value(col, v) for col, v in w.prev.items() if col in codec.by_column}
