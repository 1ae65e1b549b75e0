"""The sync registry: every syncable CRM entity, in initial-sync order."""

from __future__ import annotations

from schema.accounts import sync as accounts
from schema.activities import sync as activities
from schema.billing import sync as billing
from schema.catalog import sync as catalog
from schema.leads import sync as leads
from schema.orders import sync as orders
from schema.service import sync as service
from sync.registry import Registry


def build_registry() -> Registry:
    registry = Registry()
    catalog.register(registry)  # territory, product, priceEntry
    accounts.register(registry)  # account, contact
    leads.register(registry)
    orders.register(registry)
    billing.register(registry)
    activities.register(registry)  # visitNote, task
    service.register(registry)
    return registry


registry = build_registry()
