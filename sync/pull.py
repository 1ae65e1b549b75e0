"""Pull: the changes a caller may see since their cursor, in commit order, paged.

Three sources feed a page, all in one ordered stream:
- the change log (`sync_change`), filtered to keys the caller can read now or could read
  before (so rows that left their scope come back as EVICT);
- a backfill of every current row under a key that *entered* the caller's scope (an
  account reassigned to them) — and, for a first sync, under every key they can read;
- an eviction of every row under a key that left their scope.
Sequence numbers are gap-free in commit order (see `sync.writer`), so a
cursor never skips a change that commits late.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from sync.cursor import CursorCodec, Position
from sync.model import among, dialect_name, utcnow
from sync.protocol import ChangeOut, PullOut, SyncRequestError
from sync.push import claim_client
from sync.registry import EntitySpec, Registry, Viewer
from sync.tables import Change, Client, LogHead, ScopeKey


@dataclass
class PullLimits:
    default_page: int = 500
    max_page: int = 1000


class PullEngine:
    def __init__(self, registry: Registry, cursors: CursorCodec, limits: PullLimits | None = None) -> None:
        self.registry = registry
        self.cursors = cursors
        self.limits = limits or PullLimits()

    async def pull(self, session: AsyncSession, viewer: Viewer, client_id: str,
                   cursor: str | None, limit: int | None,
                   entities: frozenset[str] | None = None, record: bool = True) -> PullOut:
        """One page. `entities` narrows the feed to some entities (a client library
        that replicates per collection); scope moves are honoured all the same.

        With `record=False` the pull only reads (so a quiet device's poll never takes a
        write lock); the caller then calls `record()` in a write transaction when the
        result says `needs_record`.
        """
        client: Any
        if record:
            client = await claim_client(session, client_id, viewer.user_id, lock=False)
            head, horizon = (await session.execute(_HEAD)).one()
        else:
            head, horizon, client = await _head_and_client(session, client_id, viewer.user_id)
        size = self.page_size(limit)
        reset = False
        if cursor:
            pos = self.cursors.decode(cursor, client_id)
            if pos.seq < horizon:
                # Older than tombstone retention: a silent gap is never an option.
                reset, pos = True, Position(seq=head, phase="b", key="*")
        else:
            # A snapshot: whatever the device held before is replaced by this.
            reset, pos = True, Position(seq=head, phase="b", key="*")
        # What the device is recorded to hold is where its cursor says it stands, not
        # what this page sends: an answer may never arrive (a timeout, a killed app),
        # and the push's reassignment grace must not start after changes the device
        # never got. A snapshot starts from its own position.
        held = pos.seq
        page = _Page(self.registry, viewer, session, entities)
        more = True
        while len(page.out) < size:
            if pos.phase is not None:
                pos = await page.run_phase(pos, size - len(page.out))
                continue
            pos, more = await page.incremental(pos, head, size - len(page.out))
            if not more and pos.phase is None:
                break
        has_more = pos.phase is not None or more
        stale = client is None or client.last_pull_seq != held or client.last_pull_at is None \
            or client.last_pull_at < utcnow() - TOUCH_EVERY
        if record and client is not None:
            await _touch(session, client.id, held)
            stale = False
        return PullOut(page.out, self.cursors.encode(pos, client_id), has_more, reset,
                       client.last_mutation_id if client else 0, held, stale)

    def page_size(self, limit: int | None) -> int:
        """Changes per page for a requested `limit`: the default when none, capped."""
        return max(1, min(limit or self.limits.default_page, self.limits.max_page))

    async def record(self, session: AsyncSession, viewer: Viewer, client_id: str,
                     seq: int) -> None:
        """Register the device if new and note how far it holds the log (`PullOut.seq`)."""
        await claim_client(session, client_id, viewer.user_id, lock=False)
        await _touch(session, client_id, seq)


async def scope_changed(session: AsyncSession, viewer: Viewer, after: int, upto: int) -> bool:
    """Whether any change in (after, upto] concerns the viewer (one indexed query)."""
    seq = col(Change.seq)
    stmt = sa.select(seq).where(seq > after, seq <= upto).limit(1)
    concerns = _concerns(viewer, upto - after)
    if concerns is not None:
        stmt = stmt.where(concerns)
    return (await session.execute(stmt)).first() is not None


#: Up to this many changes behind the head, a pull reads its range by sequence number.
SCAN_RANGE = 20_000


def _concerns(viewer: Viewer, span: int) -> Any:
    """Change-log rows that may matter to the viewer: in a key they read now, leaving a
    key they read now, or leaving a key one of their users held at the time.

    `span` is how many changes the range holds. A short range (a device that synced
    recently) is read by sequence number and filtered: left as a plain OR, the planners
    (SQLite's above all) walk the key indexes instead, i.e. every change ever made under
    the viewer's keys, ~10 ms for an empty pull of a rep with 1,000 accounts. The CASE
    hides the OR from the index choice; a long range keeps the index-driven plan.
    """
    return _concerns_plan(viewer, span <= SCAN_RANGE)


@functools.lru_cache(maxsize=4096)
def _concerns_plan(viewer: Viewer, short: bool) -> Any:
    """`_concerns`, built once per viewer and plan (viewers are memoised too)."""
    if viewer.keys is None:
        return None
    parts = [col(Change.scope_key).in_(viewer.keys), col(Change.prev_scope_key).in_(viewer.keys)]
    if viewer.holders is not None:
        parts.append(col(Change.prev_holder_id).in_(viewer.holders))
    if short:
        return sa.case((sa.or_(*parts), sa.true()), else_=sa.false())
    return sa.or_(*parts)


@functools.lru_cache(maxsize=4096)
def _log_page(viewer: Viewer, short: bool) -> Any:
    """The change-log page query of a viewer (built once: every poll runs it), with the
    parameters `after`, `head` and `room`."""
    seq = col(Change.seq)
    stmt = (
        sa.select(seq, col(Change.entity), col(Change.row_id), col(Change.op),
                  col(Change.scope_key), col(Change.prev_scope_key))
        .where(seq > sa.bindparam("after"), seq <= sa.bindparam("head"))
        .order_by(seq).limit(sa.bindparam("room", type_=sa.Integer))
    )
    concerns = _concerns_plan(viewer, short)
    return stmt if concerns is None else stmt.where(concerns)


@functools.cache
def _columns(table: sa.Table, dialect: str) -> tuple[Any, ...]:
    """A table's columns as a pull reads them to send them: ids, timestamps and dates come
    as (nearly) their wire text, so no UUID or datetime object is built for every value
    sent and formatted back (ids alone were a tenth of a page's CPU). Code that needs an
    id as a UUID selects it again, labelled `_id`."""
    return tuple(_wire_text(c, dialect).label(c.name) for c in table.columns)


def _wire_text(column: Any, dialect: str) -> Any:
    """The column as the pull reads it: text for ids, timestamps and dates (the codec's
    dump passes such text through), the column itself otherwise."""
    t = column.type
    if isinstance(t, sa.types.TypeDecorator):
        t = t.impl_instance
    if isinstance(t, sa.Uuid):
        return _id_text(column, dialect)
    if isinstance(t, sa.DateTime):
        return _timestamp_text(column, dialect)
    if isinstance(t, sa.Date):
        # ISO 8601. On PostgreSQL spelled out: a cast to text would follow DateStyle.
        return (sa.func.to_char(column, _lit("'YYYY-MM-DD'"), type_=sa.String)
                if dialect == "postgresql" else sa.type_coerce(column, sa.String))
    return column


def _lit(sql: str) -> Any:
    """A constant spelled into the statement, so it carries no extra parameters."""
    return sa.literal_column(sql, sa.String)


def _id_text(column: Any, dialect: str) -> Any:
    """A UUID column as text the codec sends as it is (PostgreSQL: the canonical 8-4-4-4-12
    form) or dashes in Python (SQLite: the 32 hex digits SQLAlchemy stores, where adding
    the dashes in SQL cost 20 ms of a 1,000-order page, twice what Python takes)."""
    if dialect == "postgresql":
        return sa.cast(column, sa.Text)
    return sa.type_coerce(column, sa.String)


def _timestamp_text(column: Any, dialect: str) -> Any:
    """A UTC timestamp as the codec writes it (`datetime.isoformat()` with `Z`): seconds,
    then `.ffffff` only when the microseconds are not zero."""
    if dialect == "postgresql":
        utc = sa.func.timezone(_lit("'UTC'"), column)
        micro = sa.func.to_char(utc, _lit("'US'"), type_=sa.String)
        return (sa.func.to_char(utc, _lit("'YYYY-MM-DD\"T\"HH24:MI:SS'"), type_=sa.String)
                + sa.case((micro == _lit("'000000'"), _lit("''")), else_=_lit("'.'") + micro)
                + _lit("'Z'"))
    # SQLite holds 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC, see UTCDateTime).
    raw = sa.type_coerce(column, sa.String)
    fraction = sa.func.substr(raw, _lit("20"), type_=sa.String)
    return (sa.func.substr(raw, _lit("1"), _lit("10"), type_=sa.String) + _lit("'T'")
            + sa.func.substr(raw, _lit("12"), _lit("8"), type_=sa.String)
            + sa.case((fraction.in_([_lit("''"), _lit("'.000000'")]), _lit("''")),
                      else_=fraction)
            + _lit("'Z'"))


#: A device's "last pull" is refreshed at least this often even when nothing moved.
TOUCH_EVERY = timedelta(minutes=1)


_HEAD = sa.select(col(LogHead.last_seq), col(LogHead.horizon_seq)).where(col(LogHead.id) == 1)
#: The log head and what a pull needs of the device record, in one statement built
#: once (every poll runs it): Core columns, not an ORM entity.
_HEAD_AND_CLIENT = (
    sa.select(col(LogHead.last_seq), col(LogHead.horizon_seq), col(Client.id),
              col(Client.user_id), col(Client.last_pull_seq), col(Client.last_pull_at),
              col(Client.last_mutation_id))
    .select_from(LogHead)
    .outerjoin(Client, col(Client.id) == sa.bindparam("client_id"))
    .where(col(LogHead.id) == 1)
)


async def _head_and_client(session: AsyncSession, client_id: str,
                           user_id: uuid.UUID) -> tuple[int, int, Any]:
    """(last seq, horizon, device record or None), read only; another user's client id
    is refused. The record has id, user_id, last_pull_seq, last_pull_at and
    last_mutation_id."""
    row = (await session.execute(_HEAD_AND_CLIENT, {"client_id": client_id})).one()
    client = row if row.id is not None else None
    if client is not None and client.user_id != user_id:
        raise SyncRequestError("CLIENT_NOT_YOURS", "this clientId belongs to another user; "
                               "mint a new clientId for this device and user")
    return int(row.last_seq), int(row.horizon_seq), client


async def _touch(session: AsyncSession, client_id: str, seq: int) -> None:
    await session.execute(
        sa.update(Client).where(col(Client.id) == client_id)
        .values(last_pull_at=utcnow(), last_pull_seq=seq)
    )


class _Page:
    def __init__(self, registry: Registry, viewer: Viewer, session: AsyncSession,
                 entities: frozenset[str] | None = None) -> None:
        self.registry = registry
        self.viewer = viewer
        self.session = session
        self.dialect = dialect_name(session)
        self.entities = entities
        self.out: list[ChangeOut] = []

    def _in_scope(self, column: Any) -> Any:
        return sa.true() if self.viewer.keys is None else column.in_(self.viewer.keys)

    async def _visible(self, keys: set[uuid.UUID]) -> set[uuid.UUID]:
        if not keys:
            return set()
        key = col(ScopeKey.key)
        stmt = sa.select(key).where(key.in_(keys), self._in_scope(key))
        return set((await self.session.execute(stmt)).scalars())

    async def _children(self, spec: EntitySpec, ids: Sequence[uuid.UUID]) -> dict[Any, list[Any]]:
        """Child rows of the parents `ids`, keyed by the parent id as `_columns` reads it
        (the parent row's own "id")."""
        out: dict[Any, list[Any]] = defaultdict(list)
        if spec.child is None or not ids:
            return out
        ch = spec.child
        rows = await self.session.execute(
            sa.select(*_columns(ch.table, self.dialect))
            .where(among(self.dialect, ch.table.c[ch.parent_column], "ids"))
            .order_by(ch.table.c[ch.order_by]), {"ids": list(ids)})
        for r in rows.mappings():
            out[r[ch.parent_column]].append(r)
        return out

    # -- backfill and eviction of a key ---------------------------------------------------

    async def run_phase(self, pos: Position, room: int) -> Position:
        specs = self.registry.specs
        entity, after = pos.entity, pos.after
        while entity < len(specs) and room > 0:
            spec = specs[entity]
            if self.entities is not None and spec.name not in self.entities:
                entity, after = entity + 1, None
                continue
            t = spec.table
            # Backfill reads whole rows; eviction only needs to know which rows it may
            # still show (rows that left the key but are visible again stay).
            stmt = (sa.select(*_columns(t, self.dialect), t.c.id.label("_id"))
                    if pos.phase == "b" else
                    sa.select(t.c.id.label("_id"), t.c.version,
                              self._in_scope(t.c.scope_key).label("_visible"))
                    ).order_by(t.c.id).limit(room)
            if pos.key == "*":
                stmt = stmt.where(self._in_scope(t.c.scope_key), t.c.deleted.is_(False))
            elif pos.phase == "b":
                # Still in scope now, too: a cursor saved mid-backfill and replayed after
                # the key moved on must not bring the new holder's rows.
                stmt = stmt.where(t.c.scope_key == uuid.UUID(hex=pos.key),
                                  self._in_scope(t.c.scope_key), t.c.deleted.is_(False))
            else:
                # Evict what was under the key when it moved: rows still under it, and
                # rows that left it since (their own change no longer names this viewer),
                # but not rows others created after the move, which the device never held
                # (their ids are the new holder's business). Its own user's are evicted:
                # orders its devices took before they heard of the move.
                key = uuid.UUID(hex=pos.key)
                left = sa.select(col(Change.row_id)).where(
                    col(Change.entity) == spec.name, col(Change.prev_scope_key) == key,
                    col(Change.seq) > pos.seq)
                # A creation is the row's first upsert with no previous values (an echo
                # of an unchanged row also has version 1, but says so in `prev`).
                born_later = sa.select(col(Change.row_id)).where(
                    col(Change.entity) == spec.name, col(Change.row_id) == t.c.id,
                    col(Change.version) == 1, col(Change.op) == "upsert",
                    col(Change.prev).is_(None), col(Change.seq) > pos.seq,
                    col(Change.actor_id).is_distinct_from(self.viewer.user_id))
                stmt = stmt.where(sa.or_(t.c.scope_key == key, t.c.id.in_(left)),
                                  ~born_later.exists())
            if after:
                stmt = stmt.where(t.c.id > uuid.UUID(hex=after))
            rows = list((await self.session.execute(stmt)).mappings())
            if pos.phase == "b":
                kids = await self._children(spec, [r["_id"] for r in rows])
                for r in rows:
                    data = spec.dump(r, kids.get(r["id"]), self.viewer)
                    self.out.append(ChangeOut(spec.name, data["id"], "UPSERT", r["version"], data))
            else:
                self.out.extend(ChangeOut(spec.name, str(r["_id"]), "EVICT", r["version"], None)
                                for r in rows if not r["_visible"])
            room -= len(rows)
            if room > 0:
                entity, after = entity + 1, None
            else:
                after = rows[-1]["_id"].hex if rows else after
        if entity >= len(specs):
            return Position(seq=pos.seq)
        return Position(seq=pos.seq, phase=pos.phase, key=pos.key, entity=entity, after=after)

    # -- the change log ---------------------------------------------------------------------

    async def incremental(self, pos: Position, head: int, room: int) -> tuple[Position, bool]:
        stmt = _log_page(self.viewer, head - pos.seq <= SCAN_RANGE)
        if self.entities is not None:
            stmt = stmt.where(sa.or_(col(Change.entity).in_(self.entities),
                                     col(Change.op) == "move"))
        rows = list((await self.session.execute(
            stmt, {"after": pos.seq, "head": head, "room": room})).all())
        if not rows:
            return Position(seq=head), False
        batch: list[Any] = []
        for r in rows:
            if r.op != "move":
                batch.append(r)
                continue
            await self._emit(batch)
            batch = []
            key = r.row_id
            vis = await self._visible({key, r.prev_scope_key})
            now_in, was_in = key in vis, r.prev_scope_key in vis
            if now_in and not was_in:
                return Position(seq=r.seq, phase="b", key=key.hex), True
            if was_in and not now_in:
                return Position(seq=r.seq, phase="e", key=key.hex), True
        await self._emit(batch)
        return Position(seq=rows[-1].seq), len(rows) == room

    async def _emit(self, changes: list[Any]) -> None:
        if not changes:
            return
        last: dict[tuple[str, uuid.UUID], int] = {}
        for i, c in enumerate(changes):
            last[(c.entity, c.row_id)] = i
        by_entity: dict[str, set[uuid.UUID]] = {}
        for entity, row_id in last:
            by_entity.setdefault(entity, set()).add(row_id)
        current: dict[tuple[str, uuid.UUID], Any] = {}
        kids: dict[str, dict[Any, list[Any]]] = {}
        for entity, ids in by_entity.items():
            spec = self.registry.get(entity)
            if spec is None:
                continue
            t = spec.table
            visible = self._in_scope(t.c.scope_key).label("_visible")
            stmt = sa.select(*_columns(t, self.dialect), t.c.id.label("_id"), visible
                             ).where(among(self.dialect, t.c.id, "ids"))
            for r in (await self.session.execute(stmt, {"ids": list(ids)})).mappings():
                current[(entity, r["_id"])] = r
            live = [i for i in ids if (entity, i) in current and not current[(entity, i)]["deleted"]]
            kids[entity] = await self._children(spec, live)
        for i, c in enumerate(changes):
            k = (c.entity, c.row_id)
            if last[k] != i or k not in current:
                continue
            row, spec = current[k], self.registry[c.entity]
            if not row["_visible"]:
                self.out.append(ChangeOut(c.entity, str(c.row_id), "EVICT", row["version"], None))
            elif row["deleted"]:
                self.out.append(ChangeOut(c.entity, str(c.row_id), "DELETE", row["version"], None))
            else:
                data = spec.dump(row, kids[c.entity].get(row["id"]), self.viewer)
                self.out.append(ChangeOut(c.entity, str(c.row_id), "UPSERT", row["version"], data))
