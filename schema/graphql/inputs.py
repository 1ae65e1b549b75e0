"""Input types derived from what a client may write on each entity (the same columns
the sync engine accepts), so the explorer and offline devices validate alike."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry

from schema.graphql.typegen import _annotation
from sync.codec import camel
from sync.registry import EntitySpec


@strawberry.input(description="A line of an order; prices and totals are computed by the server.")
class OrderLineInput:
    id: strawberry.ID | None = None
    product_id: strawberry.ID
    quantity: int
    discount_bp: int | None = 0


def input_type(spec: EntitySpec, name: str) -> type:
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for col in spec.table.columns:
        if col.name not in spec.client_columns:
            continue
        base = _annotation(col)
        annotations[col.name] = base | None if not (col.nullable) else base
        namespace[col.name] = strawberry.UNSET
    if spec.child is not None:
        annotations["lines"] = list[OrderLineInput] | None
        namespace["lines"] = strawberry.UNSET
    namespace["__annotations__"] = annotations
    namespace["__module__"] = __name__
    return strawberry.input(type(name, (), namespace),
                            description=f"Fields of a {spec.name}; omitted fields are unchanged.")


def to_wire(value: Any) -> dict[str, Any]:
    """An input object → the wire `fields` dict the sync engine takes."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        v = getattr(value, f.name)
        if v is strawberry.UNSET:
            continue
        if f.name == "lines" and v is not None:
            v = [{"id": ln.id, "productId": ln.product_id, "quantity": ln.quantity,
                  "discountBp": ln.discount_bp or 0} if ln.id else
                 {"productId": ln.product_id, "quantity": ln.quantity,
                  "discountBp": ln.discount_bp or 0} for ln in v]
        elif hasattr(v, "name") and hasattr(v, "value"):
            v = v.name
        out[camel(f.name)] = v
    return out


