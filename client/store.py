"""The device's local database: one SQLite file per device (per signed-in user).

Tables
------
``meta``     key/value: clientId, pull cursor, next mutationId, tokens, signed-in user.
``records``  the replica of the rep's scope plus local state, one row per (entity, id):

             - ``server_data``/``version``: the record as the server last showed it
               (a pull change or a push result), NULL when the server has not shown it;
             - ``draft``: for a record the server never accepted (a REJECTED create
               without server data), what the user typed, so it stays on screen;
             - ``data``: what the app shows = (server_data or draft) with every pending
               outbox mutation for the record replayed on top ("rebase"); NULL hides the
               row (a pending delete, or an update of a record the server removed);
             - ``pending``: how many outbox mutations target the record;
             - ``sync_status``, ``error_code``, ``rejected_reason``, ``conflict_id``,
               ``status_version``: the outcome of the device's last push for the record.
``outbox``   pending mutations in mutationId order (1, 2, 3, ... per clientId, never
             reused): they stay until the server has answered them.
``notices``  a journal of outcomes the user should see (REJECTED, CONFLICT, warnings).

Every change that must be atomic (enqueue + optimistic apply; a pull page + its cursor;
a push answer + dequeue) runs in one SQLite transaction, so a crash at any point leaves
a state the next `sync()` continues from.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS records (
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER,
    server_data TEXT,
    draft TEXT,
    data TEXT,
    pending INTEGER NOT NULL DEFAULT 0,
    sync_status TEXT,
    error_code TEXT,
    rejected_reason TEXT,
    conflict_id TEXT,
    status_version INTEGER,
    updated_at TEXT,
    PRIMARY KEY (entity, id)
);
CREATE TABLE IF NOT EXISTS outbox (
    mutation_id INTEGER PRIMARY KEY,
    entity TEXT NOT NULL,
    op TEXT NOT NULL,
    id TEXT NOT NULL,
    base_version INTEGER,
    fields TEXT,
    client_time TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_record ON outbox (entity, id);
CREATE TABLE IF NOT EXISTS notices (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    mutation_id INTEGER,
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    code TEXT,
    message TEXT,
    conflict_id TEXT,
    detail TEXT
);
"""

#: Push outcomes that mean "the server has this record as `data` says".
ACCEPTED = ("APPLIED", "MERGED", "CONFLICT")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


@dataclass(frozen=True)
class Record:
    """A record as the app shows it, with its local sync state."""

    entity: str
    id: str
    #: What to show: the server's record with this device's pending edits on top.
    data: dict[str, Any] | None
    #: The server version `data` is based on; None if the server never showed it.
    version: int | None
    #: The server's own copy (None: not on the server as far as the device knows).
    server_data: dict[str, Any] | None
    #: Outbox mutations not yet answered by the server.
    pending: int
    #: Outcome of the device's last push for this record (APPLIED/MERGED/CONFLICT/REJECTED).
    sync_status: str | None
    error_code: str | None
    rejected_reason: str | None
    conflict_id: str | None

    @property
    def rejected(self) -> bool:
        return self.sync_status == "REJECTED"

    @property
    def local_only(self) -> bool:
        """Never accepted by the server (a pending or rejected create)."""
        return self.server_data is None


@dataclass(frozen=True)
class OutboxEntry:
    mutation_id: int
    entity: str
    op: str
    id: str
    base_version: int | None
    fields: dict[str, Any] | None
    client_time: str
    state: str
    attempts: int

    def wire(self) -> dict[str, Any]:
        """The entry as a `SyncMutationInput`."""
        return {"mutationId": self.mutation_id, "entity": self.entity, "op": self.op,
                "id": self.id, "baseVersion": self.base_version, "fields": self.fields,
                "clientTime": self.client_time}


@dataclass(frozen=True)
class Notice:
    seq: int
    at: str
    mutation_id: int | None
    entity: str
    id: str
    status: str
    code: str | None
    message: str | None
    conflict_id: str | None
    detail: dict[str, Any] | None


def fold(base: dict[str, Any] | None, entries: Iterable[OutboxEntry],
         record_id: str) -> dict[str, Any] | None:
    """Replay pending mutations on top of a base document (the rebase rule).

    CREATE sets the sent fields (on top of whatever is there), UPDATE overlays the sent
    fields on an existing document (an update of a record the device does not have shows
    nothing), DELETE hides the record.
    """
    data = None if base is None else dict(base)
    for e in entries:
        if e.op == "CREATE":
            data = {**(data or {}), **(e.fields or {}), "id": record_id}
        elif e.op == "UPDATE":
            data = None if data is None else {**data, **(e.fields or {})}
        else:
            data = None
    return data


class LocalStore:
    """SQLite persistence for one device. Not thread-safe: use it from one thread
    (the event loop's); open one `LocalStore` per file at a time."""

    def __init__(self, path: str | Path = ":memory:", *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        self.db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._depth = 0
        self.db.executescript(_DDL)
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer client (schema {version})")
        if self.get_meta("client_id") is None:
            self.set_meta("client_id", str(uuid.uuid4()))
            self.set_meta("next_mutation_id", "1")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (nested calls join the outer transaction)."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                            "DO UPDATE SET value = excluded.value", (key, value))

    @property
    def client_id(self) -> str:
        value = self.get_meta("client_id")
        assert value is not None
        return value

    @property
    def cursor(self) -> str | None:
        return self.get_meta("cursor")

    @property
    def next_mutation_id(self) -> int:
        return int(self.get_meta("next_mutation_id") or "1")

    # -- records ----------------------------------------------------------------------------

    @staticmethod
    def _record(row: sqlite3.Row) -> Record:
        return Record(row["entity"], row["id"], _loads(row["data"]), row["version"],
                      _loads(row["server_data"]), row["pending"], row["sync_status"],
                      row["error_code"], row["rejected_reason"], row["conflict_id"])

    def get(self, entity: str, id: str, *, hidden: bool = False) -> Record | None:
        """A record, or None; `hidden=True` also returns rows hidden by a pending delete."""
        row = self.db.execute("SELECT * FROM records WHERE entity = ? AND id = ?",
                              (entity, id)).fetchone()
        if row is None or (row["data"] is None and not hidden):
            return None
        return self._record(row)

    def records(self, entity: str | None = None, *, hidden: bool = False) -> list[Record]:
        sql = "SELECT * FROM records"
        where, args = [], []
        if entity is not None:
            where.append("entity = ?")
            args.append(entity)
        if not hidden:
            where.append("data IS NOT NULL")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._record(r) for r in self.db.execute(sql + " ORDER BY entity, id", args)]

    def counts(self) -> dict[str, int]:
        """Visible records per entity."""
        return {e: n for e, n in self.db.execute(
            "SELECT entity, COUNT(*) FROM records WHERE data IS NOT NULL GROUP BY entity")}

    def server_replica(self) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
        """(entity, id) → (version, server_data) for every record the server has shown."""
        return {(r["entity"], r["id"]): (r["version"], json.loads(r["server_data"]))
                for r in self.db.execute("SELECT entity, id, version, server_data FROM records "
                                         "WHERE server_data IS NOT NULL")}

    def rebase(self, entity: str, id: str) -> None:
        """Recompute what the app shows for one record from its base and its outbox."""
        row = self.db.execute("SELECT server_data, draft FROM records WHERE entity = ? AND id = ?",
                              (entity, id)).fetchone()
        entries = self.pending_for(entity, id)
        base = None
        if row is not None:
            base = _loads(row["server_data"])
            if base is None:
                base = _loads(row["draft"])
        data = fold(base, entries, id)
        if row is None:
            if not entries:
                return
            self.db.execute("INSERT INTO records (entity, id, data, pending, updated_at) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (entity, id, _dumps(data), len(entries), now_iso()))
            return
        if base is None and not entries and row["draft"] is None:
            self.db.execute("DELETE FROM records WHERE entity = ? AND id = ?", (entity, id))
            return
        self.db.execute("UPDATE records SET data = ?, pending = ?, updated_at = ? "
                        "WHERE entity = ? AND id = ?",
                        (_dumps(data), len(entries), now_iso(), entity, id))

    def set_server(self, entity: str, id: str, version: int | None,
                   data: dict[str, Any] | None) -> None:
        """Record what the server has (None: nothing visible to this device)."""
        self.db.execute(
            "INSERT INTO records (entity, id, version, server_data, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(entity, id) DO UPDATE SET "
            "version = excluded.version, server_data = excluded.server_data, "
            "draft = CASE WHEN excluded.server_data IS NULL THEN records.draft END, "
            "updated_at = excluded.updated_at",
            (entity, id, version if data is not None else None, _dumps(data), now_iso()))

    def set_draft(self, entity: str, id: str, draft: dict[str, Any] | None) -> None:
        self.db.execute("UPDATE records SET draft = ? WHERE entity = ? AND id = ?",
                        (_dumps(draft), entity, id))

    def set_outcome(self, entity: str, id: str, status: str | None, code: str | None = None,
                    reason: str | None = None, conflict_id: str | None = None,
                    version: int | None = None) -> None:
        self.db.execute(
            "UPDATE records SET sync_status = ?, error_code = ?, rejected_reason = ?, "
            "conflict_id = ?, status_version = ? WHERE entity = ? AND id = ?",
            (status, code, reason, conflict_id, version, entity, id))

    def drop(self, entity: str, id: str) -> None:
        self.db.execute("DELETE FROM records WHERE entity = ? AND id = ?", (entity, id))

    def apply_changes(self, changes: Sequence[dict[str, Any]]) -> None:
        """Apply one pull page (inside the caller's transaction).

        UPSERT replaces the server copy unless it is older than the one the device has
        (a push result can be newer than a page read just before it); records with
        pending mutations are rebased. DELETE and EVICT drop the server copy: the row goes
        unless pending mutations keep it (they are answered by the server next push).
        A newer server version clears the outcome flags of the device's last push.
        """
        if not changes:
            return
        pending = {(e, i) for e, i in self.db.execute("SELECT DISTINCT entity, id FROM outbox")}
        drafts = {(e, i) for e, i in self.db.execute(
            "SELECT entity, id FROM records WHERE draft IS NOT NULL")}
        stamp = now_iso()
        upserts: list[tuple[Any, ...]] = []
        removals: list[tuple[str, str]] = []
        touched: list[tuple[str, str]] = []
        for c in changes:
            key = (c["entity"], c["id"])
            if c["op"] == "UPSERT":
                doc = _dumps(c["data"])
                if key in pending or key in drafts:
                    touched.append(key)
                    upserts.append((c["entity"], c["id"], c["version"], doc, None, stamp))
                else:
                    upserts.append((c["entity"], c["id"], c["version"], doc, doc, stamp))
            else:
                if key in pending or key in drafts:
                    self.set_server(c["entity"], c["id"], None, None)
                    touched.append(key)
                else:
                    removals.append(key)
        self.db.executemany(
            "INSERT INTO records (entity, id, version, server_data, data, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity, id) DO UPDATE SET "
            "version = excluded.version, server_data = excluded.server_data, "
            "data = excluded.data, draft = NULL, updated_at = excluded.updated_at, "
            "sync_status = CASE WHEN excluded.version > records.status_version "
            "  THEN NULL ELSE records.sync_status END, "
            "error_code = CASE WHEN excluded.version > records.status_version "
            "  THEN NULL ELSE records.error_code END, "
            "rejected_reason = CASE WHEN excluded.version > records.status_version "
            "  THEN NULL ELSE records.rejected_reason END, "
            "conflict_id = CASE WHEN excluded.version > records.status_version "
            "  THEN NULL ELSE records.conflict_id END "
            "WHERE records.version IS NULL OR excluded.version >= records.version",
            upserts)
        self.db.executemany("DELETE FROM records WHERE entity = ? AND id = ?", removals)
        for entity, id in touched:
            self.rebase(entity, id)

    def clear_replica(self) -> None:
        """Forget everything the server showed (a reset); keep the outbox and drafts."""
        self.db.execute("DELETE FROM records WHERE pending = 0 AND draft IS NULL")
        keep = list(self.db.execute("SELECT entity, id FROM records"))
        self.db.execute("UPDATE records SET server_data = NULL, version = NULL")
        for entity, id in keep:
            self.rebase(entity, id)

    def wipe(self) -> None:
        """Forget every record, the cursor and the journal (another user signs in)."""
        self.db.execute("DELETE FROM records")
        self.db.execute("DELETE FROM notices")
        self.set_meta("cursor", None)

    # -- outbox -----------------------------------------------------------------------------

    @staticmethod
    def _entry(row: sqlite3.Row) -> OutboxEntry:
        return OutboxEntry(row["mutation_id"], row["entity"], row["op"], row["id"],
                           row["base_version"], _loads(row["fields"]), row["client_time"],
                           row["state"], row["attempts"])

    def enqueue(self, entity: str, op: str, id: str, base_version: int | None,
                fields: dict[str, Any] | None, client_time: str) -> int:
        """Append a mutation with the next mutationId and rebase its record (atomic)."""
        with self.transaction():
            mid = self.next_mutation_id
            self.db.execute(
                "INSERT INTO outbox (mutation_id, entity, op, id, base_version, fields, "
                "client_time, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (mid, entity, op, id, base_version, _dumps(fields), client_time, now_iso()))
            self.set_meta("next_mutation_id", str(mid + 1))
            self.rebase(entity, id)
        return mid

    def outbox(self, limit: int | None = None) -> list[OutboxEntry]:
        sql = "SELECT * FROM outbox ORDER BY mutation_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._entry(r) for r in self.db.execute(sql)]

    def outbox_size(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def pending_for(self, entity: str, id: str) -> list[OutboxEntry]:
        return [self._entry(r) for r in self.db.execute(
            "SELECT * FROM outbox WHERE entity = ? AND id = ? ORDER BY mutation_id",
            (entity, id))]

    def mark(self, mutation_ids: Sequence[int], state: str) -> None:
        """'sent' (counts an attempt) or back to 'pending' (the server surely did not
        process it, e.g. the batch was refused as a whole)."""
        bump = 1 if state == "sent" else 0
        with self.transaction():
            self.db.executemany(
                "UPDATE outbox SET state = ?, attempts = attempts + ? WHERE mutation_id = ?",
                [(state, bump, m) for m in mutation_ids])

    def dequeue(self, mutation_id: int) -> None:
        self.db.execute("DELETE FROM outbox WHERE mutation_id = ?", (mutation_id,))

    def renumber(self, first: int, *, after: int = 0) -> None:
        """Give the outbox entries with id > `after` consecutive ids from `first` on, in
        order. Only safe for ids the server has not processed (a MUTATION_GAP answer, a
        new clientId, or entries never sent)."""
        with self.transaction():
            rows = [r[0] for r in self.db.execute(
                "SELECT mutation_id FROM outbox WHERE mutation_id > ? ORDER BY mutation_id",
                (after,))]
            self.db.executemany("UPDATE outbox SET mutation_id = ? WHERE mutation_id = ?",
                                [(-i - 1, m) for i, m in enumerate(rows)])
            self.db.executemany("UPDATE outbox SET mutation_id = ? WHERE mutation_id = ?",
                                [(first + i, -i - 1) for i in range(len(rows))])
            top = self.db.execute("SELECT MAX(mutation_id) FROM outbox").fetchone()[0]
            self.set_meta("next_mutation_id", str(max(first + len(rows), (top or 0) + 1)))

    # -- notices ----------------------------------------------------------------------------

    def add_notice(self, mutation_id: int | None, entity: str, id: str, status: str,
                   code: str | None, message: str | None, conflict_id: str | None,
                   detail: dict[str, Any] | None = None) -> None:
        self.db.execute(
            "INSERT INTO notices (at, mutation_id, entity, id, status, code, message, "
            "conflict_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now_iso(), mutation_id, entity, id, status, code, message, conflict_id,
             _dumps(detail)))

    def notices(self, after: int = 0) -> list[Notice]:
        return [Notice(r["seq"], r["at"], r["mutation_id"], r["entity"], r["id"], r["status"],
                       r["code"], r["message"], r["conflict_id"], _loads(r["detail"]))
                for r in self.db.execute("SELECT * FROM notices WHERE seq > ? ORDER BY seq",
                                         (after,))]

    def clear_notices(self, upto: int | None = None) -> None:
        if upto is None:
            self.db.execute("DELETE FROM notices")
        else:
            self.db.execute("DELETE FROM notices WHERE seq <= ?", (upto,))
