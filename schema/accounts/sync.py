"""Accounts and contacts on the sync path: field-level three-way merge."""

from __future__ import annotations

from typing import Any

from schema.accounts.tables import Account, Contact
from schema.hooks import Hooks, NoRepDelete
from sync.policies import FieldMerge
from sync.registry import EntitySpec, Registry, Viewer

ADDRESS = frozenset({"street", "city", "postal_code", "region", "country"})
GEO = frozenset({"lat", "lon"})
#: What the back office owns on an account: a rep's value never beats the server's.
ACCOUNT_RESTRICTED = frozenset({
    "owner_id", "territory_id", "credit_limit_cents", "payment_terms_days", "currency", "status",
})


class AccountHooks(NoRepDelete):
    def defaults(self, viewer: Viewer, values: dict[str, Any]) -> dict[str, Any]:
        values.setdefault("owner_id", viewer.user_id)
        return values


def register(registry: Registry) -> None:
    registry.register(EntitySpec(
        name="account", model=Account, policy=FieldMerge(groups=(ADDRESS, GEO)),
        hooks=AccountHooks(),
        scope_of=lambda r: r["id"], holder_of=lambda r: r.get("owner_id"), root_kind="account",
        restricted_columns=ACCOUNT_RESTRICTED,
    ))
    registry.register(EntitySpec(
        name="contact", model=Contact, policy=FieldMerge(), hooks=Hooks(),
        scope_of=lambda r: r["account_id"],
    ))
