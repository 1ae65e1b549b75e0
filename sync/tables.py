"""The sync engine's own tables: change log, scope map, devices, results, conflicts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sync.model import UTCDateTime, new_id, utcnow

#: The scope key every caller can read (e.g. the active product catalogue).
PUBLIC_KEY = uuid.UUID(int=0)

#: PostgreSQL only: blocks of provisional (negative) sequence numbers for change-log rows
#: written by a transaction that has not committed yet (`sync.writer`). Created by
#: migration 0005 with the trigger that numbers them, never without it.
PROVISIONAL = sa.Sequence("sync_change_provisional")


class LogHead(SQLModel, table=True):
    """One row holding the last change sequence number.

    Writers bump it with `UPDATE … RETURNING` (`sync.writer`), on PostgreSQL from a trigger
    deferred to COMMIT. The row lock (PostgreSQL) or the single writer (SQLite) makes
    sequence order equal commit order, so a pull that has seen seq N has seen every change
    below N: no gaps.
    """

    __tablename__ = "sync_log_head"
    id: int = Field(default=1, primary_key=True)
    last_seq: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    horizon_seq: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)


class Change(SQLModel, table=True):
    """One committed write, in commit order.

    `op` is `upsert`, `delete` or `move` (a scope key changing holder). `prev` holds the
    old values of the fields the write changed, so conflicts can show the base value and
    merges can tell which fields the server changed since a client's base version.
    """

    __tablename__ = "sync_change"
    seq: int = Field(sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    entity: str = Field(max_length=64, nullable=False)
    row_id: uuid.UUID = Field(nullable=False)
    version: int = Field(nullable=False)
    op: str = Field(max_length=8, nullable=False)
    scope_key: uuid.UUID = Field(nullable=False, index=True)
    prev_scope_key: uuid.UUID | None = Field(default=None)
    #: Who held `prev_scope_key` when the row left it. A pull must still evict the row
    #: from that holder's devices even after the key itself moved on.
    prev_holder_id: uuid.UUID | None = Field(default=None)
    hlc: str = Field(max_length=64, nullable=False)
    actor_id: uuid.UUID | None = Field(default=None)
    client_id: str | None = Field(default=None, max_length=128)
    mutation_id: int | None = Field(default=None)
    # none_as_null: an insert has no previous values, stored as SQL NULL (not 'null').
    prev: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON(none_as_null=True))
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

    __table_args__ = (
        sa.Index("ix_sync_change_row", "entity", "row_id", "version"),
        # Only moves and scope changes set these: partial indexes skip the other rows,
        # which is most of them, and pulls only ever look them up by value.
        *(sa.Index(f"ix_sync_change_{name}", name,
                   postgresql_where=sa.text(f"{name} IS NOT NULL"),
                   sqlite_where=sa.text(f"{name} IS NOT NULL"))
          for name in ("prev_scope_key", "prev_holder_id")),
    )


class ScopeKey(SQLModel, table=True):
    """Who holds a partition of data: an account's owner, a user for their own rows.

    A NULL holder means no single user holds it; the schema's scope rule decides who may
    read such keys (everyone for the public catalogue, managers for unrouted leads).
    """

    __tablename__ = "sync_scope"
    key: uuid.UUID = Field(primary_key=True)
    holder_id: uuid.UUID | None = Field(default=None, index=True)
    kind: str = Field(max_length=32, nullable=False)


class Client(SQLModel, table=True):
    """A device: one `clientId`, owned by the first user who used it."""

    __tablename__ = "sync_client"
    id: str = Field(primary_key=True, max_length=128)
    user_id: uuid.UUID = Field(nullable=False, index=True)
    last_mutation_id: int = Field(default=0, nullable=False)
    protocol_version: int = Field(default=1, nullable=False)
    app_version: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_push_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_pull_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_pull_seq: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    clock_skew_ms: int | None = Field(default=None, sa_type=sa.BigInteger)
    pending_rejections: int = Field(default=0, nullable=False)


class MutationResult(SQLModel, table=True):
    """The stored answer to each processed mutation, replayed when a client re-sends it."""

    __tablename__ = "sync_mutation"
    client_id: str = Field(primary_key=True, max_length=128)
    mutation_id: int = Field(primary_key=True)
    entity: str = Field(max_length=64, nullable=False)
    row_id: uuid.UUID = Field(nullable=False)
    status: str = Field(max_length=16, nullable=False)
    result: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Conflict(SQLModel, table=True):
    """A disagreement the engine resolved by rule, with the losing side kept for review."""

    __tablename__ = "sync_conflict"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    entity: str = Field(max_length=64, nullable=False)
    row_id: uuid.UUID = Field(nullable=False, index=True)
    scope_key: uuid.UUID = Field(nullable=False, index=True)
    user_id: uuid.UUID = Field(nullable=False, index=True)
    client_id: str | None = Field(default=None, max_length=128)
    mutation_id: int | None = Field(default=None)
    rule: str = Field(max_length=64, nullable=False)
    fields: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    base: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    server: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    client: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    outcome: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    resolved: bool = Field(default=False, nullable=False, index=True)
    resolution: str | None = Field(default=None, max_length=16)
    resolved_by: uuid.UUID | None = Field(default=None)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
