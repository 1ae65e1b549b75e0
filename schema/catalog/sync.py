"""Catalogue and reference data: read-only for reps."""

from __future__ import annotations

from schema.catalog.tables import PriceEntry, Product
from schema.hooks import ReferenceHooks
from schema.identity.tables import Territory
from schema.scope import ARCHIVE_KEY
from sync.policies import ServerOnly
from sync.registry import EntitySpec, Registry
from sync.tables import PUBLIC_KEY


def register(registry: Registry) -> None:
    registry.register(EntitySpec(
        name="territory", model=Territory, policy=ServerOnly(), hooks=ReferenceHooks(),
        scope_of=lambda r: PUBLIC_KEY,
    ))
    # Active products are public; a deactivated one moves to the archive key, so reps'
    # devices evict it (order lines keep their product id and price).
    registry.register(EntitySpec(
        name="product", model=Product, policy=ServerOnly(), hooks=ReferenceHooks(),
        scope_of=lambda r: PUBLIC_KEY if r.get("active", True) else ARCHIVE_KEY,
        private_columns=frozenset({"unit_cost_cents"}),
    ))
    registry.register(EntitySpec(
        name="priceEntry", model=PriceEntry, policy=ServerOnly(), hooks=ReferenceHooks(),
        scope_of=lambda r: r.get("account_id") or PUBLIC_KEY,
    ))
