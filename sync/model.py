"""The columns every synced table carries, and the shared SQLAlchemy metadata.

The naming convention is set before any table is defined so Alembic produces stable
constraint names on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel
from uuid6 import uuid7

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    """UUIDv7: time-ordered, so client-minted keys keep index locality."""
    return uuid7()


def table_of(model: type[SQLModel]) -> sa.Table:
    """The `sa.Table` of a `table=True` model.

    SQLModel sets `__table__` when the class is created, invisibly to type checkers; use
    this wherever Core needs the table (its typed `.c` columns, `select(table)`).
    """
    return cast(sa.Table, model.__table__)  # type: ignore[attr-defined]


def dialect_name(session: AsyncSession) -> str:
    """The dialect ("sqlite", "postgresql") of the engine a session is bound to."""
    bind = session.bind
    if bind is None:
        raise RuntimeError("the session is not bound to an engine")
    return bind.dialect.name


def among(dialect: str, column: Any, name: str) -> Any:
    """`column IN :name`, for statements built once per dialect and executed with
    `{name: [values]}`.

    On PostgreSQL `= ANY(:name)`, one array parameter: an IN list of n parameters is a
    new statement text for every n, which SQLAlchemy renders and psycopg parses again each
    time (~5 ms for the 1,000 ids of a pull page). Elsewhere an expanding IN.
    """
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zone type and hands back naive values; PostgreSQL uses
    timestamptz. Naive input is refused rather than guessed.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; fieldsync stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Any:
        # timestamptz arrives aware (an instant, whatever the session's time zone); only
        # SQLite's naive values need the conversion. Saves a call per value on big pulls.
        if dialect.name == "postgresql":
            return None
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def column_default(col: sa.Column[Any]) -> Any:
    """The Python-side default of a column (scalar or callable), or None."""
    if col.default is None:
        return None
    arg = col.default.arg  # type: ignore[attr-defined]
    return arg(None) if callable(arg) else arg


class SyncedModel(SQLModel):
    """Mixin for tables that mobile clients replicate.

    `scope_key` names the partition a row belongs to (see `sync.scope`); the write path
    keeps it, `version` and `updated_at` current, and never hard-deletes (`deleted`).
    """

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    version: int = Field(default=1, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    deleted: bool = Field(default=False, nullable=False)
    scope_key: uuid.UUID = Field(index=True, nullable=False)
