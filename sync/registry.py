"""What `schema/` tells the engine about each syncable entity and about scope."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from sync.codec import TableCodec
from sync.model import column_default

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from sync.policies import Policy

SYSTEM_COLUMNS = frozenset({"id", "version", "created_at", "updated_at", "deleted", "scope_key"})


@dataclass(frozen=True)
class Viewer:
    """Who is reading or writing, as the engine sees them.

    `keys` selects the scope keys the viewer may read (None: all of them). `principal`
    is the schema's own identity object, handed back to the entity hooks.
    """

    user_id: uuid.UUID
    keys: sa.Select[Any] | None
    privileged: bool
    principal: Any = None
    #: The users whose holdings the viewer reads (None: everyone's).
    holders: sa.Select[Any] | None = None


@dataclass(frozen=True)
class ChildSpec:
    """Rows that travel inside their parent (an order's lines), replaced as a whole."""

    wire: str
    table: sa.Table
    parent_column: str
    order_by: str
    codec: TableCodec


class Rejection(Exception):
    """A business rule refused a mutation: it is REJECTED and the client is told why.

    `keep`, when given, is the row to store anyway (an order kept as `rejected` so the
    rep can fix and resubmit it).
    """

    def __init__(self, code: str, message: str, field: str | None = None,
                 keep: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.keep = keep


class EntityHooks(Protocol):
    """Entity-specific rules the schema supplies. All may raise `Rejection`."""

    async def prepare(
        self, session: AsyncSession, viewer: Viewer, rows: Sequence[Mapping[str, Any]]
    ) -> Any:
        """Prefetch, in a few statements, what validating this batch needs. Each row is
        the stored one (if any) with the sent values over it, plus `_children` (sent),
        `_current_children` (stored) and `_stored` (whether the row exists yet)."""

    def defaults(self, viewer: Viewer, values: dict[str, Any]) -> dict[str, Any]:
        """Fill what the server decides for a new row (e.g. its owner is its creator)."""

    def on_create(self, viewer: Viewer, values: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """Validate and complete a new row (defaults, derived fields); return it."""

    def on_update(
        self, viewer: Viewer, current: Mapping[str, Any], merged: dict[str, Any], ctx: Any
    ) -> dict[str, Any]:
        """Validate the merged row and derive server fields; return it."""

    def on_delete(self, viewer: Viewer, current: Mapping[str, Any], ctx: Any) -> None:
        """Refuse a delete the viewer may not make."""

    async def finish(self, session: AsyncSession, ctx: Any) -> None:
        """Write derived, unsynced rows (e.g. history) after the batch was flushed."""

    def observe(self, ctx: Any, entity: str, row: Mapping[str, Any]) -> None:
        """See a row created earlier in the same batch (an order's new account)."""


@dataclass
class EntitySpec:
    name: str
    model: Any
    policy: Policy
    hooks: EntityHooks
    scope_of: Callable[[Mapping[str, Any]], uuid.UUID]
    #: For scope roots (an account): who holds the key the row defines.
    holder_of: Callable[[Mapping[str, Any]], uuid.UUID | None] | None = None
    root_kind: str = ""
    #: Columns a client may never set (computed or server-assigned).
    server_columns: frozenset[str] = frozenset()
    #: Columns only privileged viewers may set; others' values lose to the server's.
    restricted_columns: frozenset[str] = frozenset()
    #: Columns not sent to unprivileged viewers (e.g. unit cost).
    private_columns: frozenset[str] = frozenset()
    child: ChildSpec | None = None
    #: Creates accepted from a device that has not yet pulled the record's move away
    #: from its user (orders and notes taken before an account was reassigned).
    accept_after_move: bool = False
    table: sa.Table = field(init=False)
    codec: TableCodec = field(init=False)
    #: Foreign-key columns → the table they point to. A client may only point at rows
    #: (or users) in its own scope; the engine checks every one it is sent.
    refs: dict[str, str] = field(init=False)
    #: Columns a client may set: all but the system and server-owned ones.
    client_columns: frozenset[str] = field(init=False)
    #: Wire names of the fields a client may echo but never set.
    server_wire: frozenset[str] = field(init=False)
    _fill: list[tuple[str, sa.Column[Any] | None, str | None]] = field(init=False, repr=False)
    _fill_names: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.table = self.model.__table__
        self.codec = TableCodec(self.table, exclude=frozenset({"scope_key", "deleted"}))
        self.refs = {col.name: fk.column.table.name for col in self.table.columns
                     for fk in col.foreign_keys if col.name not in SYSTEM_COLUMNS}
        self.client_columns = (frozenset(c.name for c in self.table.columns)
                               - SYSTEM_COLUMNS - self.server_columns)
        self.server_wire = frozenset(
            self.codec.by_column[c].wire for c in self.server_columns | SYSTEM_COLUMNS
            if c in self.codec.by_column)
        # What `with_defaults` does per missing column, decided once: it runs for every
        # row a push creates.
        self._fill = []
        for col in self.table.columns:
            if col.name in SYSTEM_COLUMNS:
                continue
            if col.default is not None:
                self._fill.append((col.name, col, None))
            elif col.nullable:
                self._fill.append((col.name, None, None))
            elif col.name not in self.server_columns:
                wire = self.codec.by_column[col.name].wire if col.name in self.codec.by_column \
                    else col.name
                self._fill.append((col.name, None, wire))
        self._fill_names = frozenset(name for name, _, _ in self._fill)

    def with_defaults(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` completed with column defaults; missing required columns raise."""
        out = dict(values)
        if self._fill_names <= out.keys():  # complete already (the write path's second look)
            return out
        for name, default, required in self._fill:
            if name in out:
                continue
            if required is not None:
                raise Rejection("MISSING_FIELD", f"'{required}' is required", required)
            out[name] = None if default is None else column_default(default)
        return out

    def dump(self, row: Mapping[str, Any] | sa.RowMapping,
             children: Sequence[Mapping[str, Any]] | None, viewer: Viewer) -> dict[str, Any]:
        omit = frozenset() if viewer.privileged else self.private_columns
        data = self.codec.dump(row, omit)
        if self.child is not None:
            dump = self.child.codec.dump
            data[self.child.wire] = [dump(c) for c in children or ()]
        return data


class Registry:
    """The syncable entities, in a fixed order (initial sync walks them in this order)."""

    def __init__(self) -> None:
        self._specs: dict[str, EntitySpec] = {}

    def register(self, spec: EntitySpec) -> EntitySpec:
        if spec.name in self._specs:
            raise ValueError(f"entity '{spec.name}' registered twice")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> EntitySpec | None:
        return self._specs.get(name)

    def __getitem__(self, name: str) -> EntitySpec:
        return self._specs[name]

    @property
    def specs(self) -> list[EntitySpec]:
        return list(self._specs.values())

    def index_of(self, name: str) -> int:
        return list(self._specs).index(name)
