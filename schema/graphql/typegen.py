"""GraphQL object types whose scalar fields come from a table's columns.

Deriving them keeps GraphQL field names identical to the sync wire names (both are the
camelCase column names) and stops the two from drifting. Relation fields are written by
hand in a mixin; columns a rep may not see (unit cost) resolve to null for them.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
import strawberry
from sqlmodel import SQLModel
from strawberry.types import Info

from schema.graphql.scalars import Cents
from sync.model import table_of

C = TypeVar("C", bound=type)


def _annotation(col: sa.Column[Any]) -> Any:
    t = col.type
    if isinstance(t, sa.types.TypeDecorator):
        t = t.impl_instance
    if col.name == "id" or isinstance(t, sa.Uuid):
        base: Any = strawberry.ID
    elif isinstance(t, sa.Enum) and t.enum_class is not None:
        base = t.enum_class
    elif isinstance(t, sa.Boolean):
        base = bool
    elif isinstance(t, sa.BigInteger):
        base = Cents
    elif isinstance(t, sa.Integer):
        base = int
    elif isinstance(t, sa.Float):
        base = float
    elif isinstance(t, sa.Date):
        base = date
    elif isinstance(t, sa.DateTime):
        base = datetime
    else:
        base = str
    return base | None if col.nullable and col.name != "id" else base


def _private_resolver(name: str, annotation: Any) -> Any:
    def resolve(root: Any, info: Info) -> Any:
        principal = info.context.principal
        if principal is None or not principal.privileged:
            return None
        return root._hidden.get(name)

    resolve.__annotations__["return"] = annotation | None
    return strawberry.field(resolver=resolve, description="Managers and admins only.")


def column_type(name: str, table: sa.Table, bases: tuple[type, ...], *,
                exclude: Iterable[str] = ("scope_key", "deleted"),
                private: Iterable[str] = (), description: str | None = None) -> type:
    """A strawberry type named `name` with a field per column of `table` plus `bases`."""
    skip, hidden = set(exclude), set(private)
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for col in table.columns:
        if col.name in skip:
            continue
        if col.name in hidden:
            namespace[col.name] = _private_resolver(col.name, _annotation(col))
        else:
            annotations[col.name] = _annotation(col)
    annotations["_hidden"] = strawberry.Private[dict[str, Any]]
    namespace["_hidden"] = dataclasses.field(default_factory=dict)
    namespace["__annotations__"] = annotations
    namespace["__module__"] = __name__
    cls = type(name, bases, namespace)
    cls._columns = tuple(c.name for c in table.columns if c.name not in skip and c.name not in hidden)  # type: ignore[attr-defined]
    cls._private = tuple(hidden)  # type: ignore[attr-defined]
    return strawberry.type(cls, description=description)


def columns(model: type[SQLModel], *, exclude: Iterable[str] = ("scope_key", "deleted"),
            private: Iterable[str] = (), description: str | None = None) -> Callable[[C], C]:
    """Class decorator: the strawberry type `column_type` derives from `model`'s table.

    The decorated class only names the type and its hand-written bases (relation mixins,
    interfaces); its body is not used. Declaring it as a class lets annotations such as
    `-> Account | None` refer to the generated type, for strawberry and type checkers.
    """

    def derive(cls: C) -> C:
        # Not a subclass of `cls`, but the same name and bases: what checkers should see.
        return cast(C, column_type(cls.__name__, table_of(model), cls.__bases__,
                                   exclude=exclude, private=private, description=description))

    return derive


def _value(v: Any) -> Any:
    if isinstance(v, uuid.UUID):
        return str(v)
    return v


def build(cls: Any, row: Mapping[str, Any] | sa.RowMapping) -> Any:
    """An instance of a generated type from a row mapping."""
    values = {c: _value(row[c]) for c in cls._columns}
    return cls(**values, _hidden={c: row[c] for c in cls._private})


