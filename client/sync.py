"""`Device`: what a phone does, against the documented wire protocol only.

    device = Device("rep1-phone.db", "https://sync.example.com")
    await device.login("rep1@example.com", "…")
    await device.sync()                          # initial sync: the rep's scope
    oid = device.create("order", {"accountId": acc, "lines": [...]})   # offline is fine
    device.update("contact", cid, {"phone": "+32 …"})
    report = await device.sync()                 # push the outbox, then pull
    device.get("order", oid).rejected_reason     # why the server refused it, if it did

See docs/client.md for how each protocol rule is implemented.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from client.auth import Auth
from client.errors import (
    FieldsyncClientError,
    NetworkError,
    ProtocolError,
    PushBlocked,
    RequestRefused,
)
from client.ids import uuid7
from client.store import ACCEPTED, LocalStore, Notice, OutboxEntry, Record, fold
from client.transport import RetryPolicy, Transport

log = logging.getLogger("fieldsync.client")

PROTOCOL_VERSION = 1
ENTITIES = frozenset({"territory", "product", "priceEntry", "account", "contact", "lead",
                      "order", "invoice", "visitNote", "task", "case"})

PUSH = """mutation Push($input: SyncPushInput!) { syncPush(input: $input) { lastMutationId
  results { mutationId status id version data conflictId
    error { code message field retryable } warnings { code message field retryable } } } }"""
PULL = """query Pull($c: ID!, $cursor: String, $limit: Int) {
  syncPull(clientId: $c, cursor: $cursor, limit: $limit) {
    changes { entity id op version data } cursor hasMore reset lastMutationId } }"""

#: Whole-push refusals that mean "send fewer mutations per request".
_TOO_BIG = ("BATCH_TOO_LARGE", "PAYLOAD_TOO_LARGE")
#: Accepted outcomes whose missing `data` means the record is gone for this device.
_GONE = ("RECORD_DELETED", "SCOPE_MOVED")


@dataclass
class SyncReport:
    """What one `sync()` did."""

    pushed: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    push_requests: int = 0
    pulled: int = 0
    pages: int = 0
    resets: int = 0
    renumbered: int = 0
    #: Results the user should look at: REJECTED, CONFLICT, or with warnings.
    problems: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class Device:
    """One device (one clientId, one local store) of one signed-in user."""

    def __init__(self, store: LocalStore | str | Path, url: str, *,
                 http: httpx.AsyncClient | None = None, transport: Transport | None = None,
                 retry: RetryPolicy | None = None, batch_size: int = 100,
                 max_batch_bytes: int = 1_000_000, page_size: int = 500,
                 app_version: str = "fieldsync-reference-client/0.1") -> None:
        self.store = store if isinstance(store, LocalStore) else LocalStore(store)
        self.transport = transport or Transport(url, http=http, retry=retry)
        self.auth = Auth(self.transport, self.store)
        if not 1 <= batch_size <= 500:
            raise ValueError("batch_size must be 1..500 (the server's limit)")
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.page_size = page_size
        self.app_version = app_version
        self._sync_lock = asyncio.Lock()

    async def __aenter__(self) -> Device:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.aclose()
        self.store.close()

    @property
    def client_id(self) -> str:
        return self.store.client_id

    # -- session -----------------------------------------------------------------------------

    async def login(self, email: str, password: str) -> None:
        """Sign in. A store belongs to one user: signing in as someone else wipes the
        replica and mints a new clientId, and is refused while the outbox is not empty."""
        email = email.strip().lower()
        previous = self.store.get_meta("user")
        if previous is not None and previous != email:
            if self.store.outbox_size():
                raise FieldsyncClientError(
                    f"{self.store.outbox_size()} unsent change(s) of {previous} are on this "
                    "device; sync them before another user signs in")
            self.store.wipe()
            self.rotate_client_id()
        await self.auth.login(email, password)
        self.store.set_meta("user", email)

    async def logout(self) -> None:
        await self.auth.logout()

    def rotate_client_id(self) -> str:
        """Start over as a new device: new clientId, outbox renumbered from 1, pull from
        scratch. For CLIENT_NOT_YOURS, or a store restored from a backup."""
        with self.store.transaction():
            self.store.set_meta("client_id", str(uuid.uuid4()))
            self.store.set_meta("cursor", None)
            self.store.renumber(1)
        return self.client_id

    # -- reading -------------------------------------------------------------------------

    def get(self, entity: str, id: str) -> Record | None:
        return self.store.get(entity, id)

    def records(self, entity: str | None = None) -> list[Record]:
        """The visible records (of one entity, or all)."""
        return self.store.records(entity)

    def outbox(self) -> list[OutboxEntry]:
        return self.store.outbox()

    def notices(self, after: int = 0) -> list[Notice]:
        return self.store.notices(after)

    # -- local writes (work offline; applied optimistically, sent by the next sync) -------

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).isoformat(timespec="milliseconds")

    @staticmethod
    def _check(entity: str, fields: dict[str, Any] | None) -> None:
        if entity not in ENTITIES:
            raise ValueError(f"unknown entity '{entity}' (one of {sorted(ENTITIES)})")
        if fields is not None:
            if not isinstance(fields, dict):
                raise TypeError("fields must be a dict of GraphQL (camelCase) field names")
            json.dumps(fields)  # must be JSON: fail now, not at push time

    def create(self, entity: str, fields: dict[str, Any], *, id: str | None = None) -> str:
        """Create a record with a device-minted UUIDv7 id; returns the id."""
        self._check(entity, fields)
        record_id = id or uuid7()
        self.store.enqueue(entity, "CREATE", record_id, None,
                           {k: v for k, v in fields.items() if k != "id"}, self._now())
        return record_id

    def update(self, entity: str, id: str, fields: dict[str, Any]) -> int:
        """Change some fields (send only what the user changed); returns the mutationId.

        baseVersion is the server version the user saw, so the server merges concurrent
        edits field by field instead of overwriting them. A record the server never
        accepted (a rejected create) is re-sent as a CREATE with the corrected fields.
        """
        self._check(entity, fields)
        fields = {k: v for k, v in fields.items() if k != "id"}
        with self.store.transaction():
            rec = self.store.get(entity, id)
            if rec is None:
                raise KeyError(f"no {entity} {id} on this device")
            pending = self.store.pending_for(entity, id)
            if rec.server_data is None and not any(e.op == "CREATE" for e in pending):
                draft = {k: v for k, v in (rec.data or {}).items() if k != "id"}
                return self.store.enqueue(entity, "CREATE", id, None, {**draft, **fields},
                                          self._now())
            return self.store.enqueue(entity, "UPDATE", id, self._base(rec, pending), fields,
                                      self._now())

    def delete(self, entity: str, id: str) -> int | None:
        """Delete a record; returns the mutationId (None: it was never on the server and
        nothing is pending, so it is just dropped locally)."""
        self._check(entity, None)
        with self.store.transaction():
            rec = self.store.get(entity, id)
            if rec is None:
                raise KeyError(f"no {entity} {id} on this device")
            pending = self.store.pending_for(entity, id)
            if rec.server_data is None and not pending:
                self.store.drop(entity, id)
                return None
            return self.store.enqueue(entity, "DELETE", id, self._base(rec, pending), None,
                                      self._now())

    @staticmethod
    def _base(rec: Record, pending: list[OutboxEntry]) -> int | None:
        if rec.version is not None:
            return rec.version
        # Only a pending create so far: the server will give it version 1.
        return 1 if any(e.op == "CREATE" for e in pending) else None

    def discard_unsent(self, mutation_id: int) -> None:
        """Drop a mutation the server has never seen (e.g. after PushBlocked) together with
        every later one for the same record; the rest of the outbox is renumbered so ids
        stay gap-free. Refused for anything that may have reached the server."""
        entries = self.store.outbox()
        tail = [e for e in entries if e.mutation_id >= mutation_id]
        if not tail or tail[0].mutation_id != mutation_id:
            raise KeyError(f"mutation {mutation_id} is not in the outbox")
        if any(e.state != "pending" for e in tail):
            raise FieldsyncClientError("that mutation (or a later one) may have reached the "
                                       "server; it cannot be discarded")
        victim = tail[0]
        with self.store.transaction():
            for e in tail:
                if (e.entity, e.id) == (victim.entity, victim.id):
                    self.store.dequeue(e.mutation_id)
            self.store.renumber(mutation_id, after=mutation_id - 1)
            self.store.rebase(victim.entity, victim.id)

    # -- sync ---------------------------------------------------------------------------------

    async def sync(self) -> SyncReport:
        """Push the outbox (in batches), then pull until hasMore is false."""
        async with self._sync_lock:
            report = SyncReport()
            started = time.monotonic()
            await self._push(report)
            await self._pull(report)
            report.seconds = time.monotonic() - started
            return report

    async def push(self) -> SyncReport:
        async with self._sync_lock:
            report = SyncReport()
            await self._push(report)
            return report

    async def pull(self) -> SyncReport:
        async with self._sync_lock:
            report = SyncReport()
            await self._pull(report)
            return report

    def _batch(self, size: int) -> list[OutboxEntry]:
        entries = self.store.outbox(size)
        total = 0
        out: list[OutboxEntry] = []
        for e in entries:
            total += len(json.dumps(e.wire(), separators=(",", ":")))
            if out and total > self.max_batch_bytes:
                break
            out.append(e)
        return out

    async def _push(self, report: SyncReport) -> None:
        size = self.batch_size
        renumbered = one_by_one = False
        while True:
            batch = self._batch(size)
            if not batch:
                return
            ids = [e.mutation_id for e in batch]
            self.store.mark(ids, "sent")
            report.push_requests += 1
            try:
                data = await self.auth.execute(PUSH, {"input": {
                    "clientId": self.client_id, "protocolVersion": PROTOCOL_VERSION,
                    "appVersion": self.app_version, "mutations": [e.wire() for e in batch]}})
            except NetworkError as e:
                if e.status is None or len(batch) == 1 or one_by_one:
                    raise
                # The server answered, but kept failing on this batch (5xx, "Unexpected
                # error."): send the mutations one at a time, which is exactly-once safe
                # and isolates the one that triggers the failure.
                log.warning("push keeps failing (%s); one mutation at a time", e)
                size, one_by_one = 1, True
                continue
            except RequestRefused as e:
                if e.code not in _TOO_BIG:
                    raise
                self.store.mark(ids, "pending")  # refused as a whole: nothing was applied
                if len(batch) == 1:
                    raise PushBlocked(batch[0].mutation_id, e.code, e.message) from e
                size = max(1, len(batch) // 2)
                log.info("push refused with %s; batches of %d now", e.code, size)
                continue
            out = data["syncPush"]
            gap = self._apply_push(batch, out, report)
            if gap:
                if renumbered:
                    raise ProtocolError("MUTATION_GAP again after renumbering the outbox")
                # The server has fewer mutations than this device thinks (it was restored
                # from a backup). Nothing at or after the gap was applied: renumber the
                # unanswered entries to follow the server's counter, and send them again.
                last = int(out["lastMutationId"])
                self.store.mark([m for m in ids if m > last], "pending")
                self.store.renumber(last + 1, after=last)
                report.renumbered += 1
                renumbered = True

    def _apply_push(self, batch: list[OutboxEntry], out: dict[str, Any],
                    report: SyncReport) -> bool:
        """Apply one push answer in one transaction; True if the server saw a gap."""
        by_id = {e.mutation_id: e for e in batch}
        results = out.get("results") or []
        answered: set[int] = set()
        gap = False
        with self.store.transaction():
            for r in results:
                entry = by_id.get(int(r["mutationId"]))
                if entry is None:
                    raise ProtocolError(f"result for mutation {r['mutationId']} that was not sent")
                error = r.get("error") or {}
                if r["status"] == "REJECTED" and error.get("code") == "MUTATION_GAP":
                    gap = True  # not processed: stays in the outbox
                    continue
                if r.get("id") and r["id"] != entry.id:
                    raise ProtocolError(
                        f"mutation {entry.mutation_id} was stored by the server for record "
                        f"{r['id']}, not {entry.id}: this store is an old copy of the device; "
                        "call rotate_client_id()")
                self._apply_result(entry, r, report)
                answered.add(entry.mutation_id)
            missing = [m for m in by_id if m not in answered]
            if missing and not gap:
                raise ProtocolError(f"no result for mutations {missing}")
            self.store.set_meta("server_last_mutation_id", str(out["lastMutationId"]))
        return gap

    def _apply_result(self, e: OutboxEntry, r: dict[str, Any], report: SyncReport) -> None:
        """One mutation's result: update the server copy, dequeue, flag, rebase."""
        status, data, version = r["status"], r.get("data"), r.get("version")
        error = r.get("error") or None
        code = error.get("code") if error else None
        st = self.store
        rec = st.get(e.entity, e.id, hidden=True)
        if status in ACCEPTED:
            if data is not None:
                st.set_server(e.entity, e.id, version, data)
            elif e.op == "DELETE" or code in _GONE:
                st.set_server(e.entity, e.id, None, None)
            # else: APPLIED without data (a replay whose result aged out): the pull that
            # follows brings the record as it is now.
            st.set_draft(e.entity, e.id, None)
        else:  # REJECTED: the mutation is spent; keep the record visible with the reason
            if data is not None:
                st.set_server(e.entity, e.id, version, data)
            elif e.op == "CREATE" and (rec is None or rec.server_data is None):
                # Never accepted: keep what the user typed so they can fix and resend it.
                draft = fold(None, [e], e.id)
                st.set_server(e.entity, e.id, None, None)
                st.set_draft(e.entity, e.id, draft)
        st.dequeue(e.mutation_id)
        st.rebase(e.entity, e.id)
        reason = error.get("message") if error and status == "REJECTED" else None
        st.set_outcome(e.entity, e.id, status, code, reason, r.get("conflictId"), version)
        report.pushed += 1
        report.statuses[status] += 1
        warnings = r.get("warnings") or []
        if status in ("REJECTED", "CONFLICT") or warnings:
            st.add_notice(e.mutation_id, e.entity, e.id, status, code,
                          error.get("message") if error else None, r.get("conflictId"),
                          {"warnings": warnings, "sent": e.fields, "op": e.op} if warnings
                          else {"sent": e.fields, "op": e.op})
            report.problems.append({"mutationId": e.mutation_id, "entity": e.entity,
                                    "id": e.id, "status": status, "error": error,
                                    "conflictId": r.get("conflictId"), "warnings": warnings})

    async def _pull(self, report: SyncReport) -> None:
        cursor = self.store.cursor
        fresh = cursor is None
        restarted = False
        while True:
            try:
                data = await self.auth.execute(PULL, {"c": self.client_id, "cursor": cursor,
                                                      "limit": self.page_size})
            except RequestRefused as e:
                if e.code == "INVALID_CURSOR" and cursor is not None:
                    # Never skip changes silently: start over from a snapshot.
                    log.warning("cursor refused (%s); pulling from scratch", e.message)
                    cursor, fresh, restarted = None, True, True
                    continue
                raise
            page = data["syncPull"]
            with self.store.transaction():
                if page["reset"] or fresh:
                    # A snapshot starts: forget the replica, keep the outbox (rebased).
                    self.store.clear_replica()
                    report.resets += 1 if page["reset"] or restarted else 0
                    fresh = restarted = False
                self.store.apply_changes(page["changes"])
                self.store.set_meta("cursor", page["cursor"])
                self.store.set_meta("server_last_mutation_id", str(page["lastMutationId"]))
            report.pages += 1
            report.pulled += len(page["changes"])
            if not page["hasMore"]:
                return
            if page["cursor"] == cursor and not page["changes"]:
                raise ProtocolError("hasMore with neither changes nor a new cursor")
            cursor = page["cursor"]
