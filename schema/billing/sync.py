from __future__ import annotations

from schema.billing.tables import Invoice
from schema.hooks import ReferenceHooks
from sync.policies import ServerOnly
from sync.registry import EntitySpec, Registry


def register(registry: Registry) -> None:
    registry.register(EntitySpec(
        name="invoice", model=Invoice, policy=ServerOnly(), hooks=ReferenceHooks(),
        scope_of=lambda r: r["account_id"],
    ))
