"""Leads on the sync path: status merges by stage rank, other fields per field."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from schema.enums import LeadStatus
from schema.hooks import Hooks
from schema.leads.tables import Lead, LeadStatusChange
from schema.scope import UNROUTED_KEY
from sync.model import new_id, utcnow
from sync.policies import FieldMerge
from sync.registry import EntitySpec, Registry, Rejection, Viewer

RANK = {
    LeadStatus.NEW: 0, LeadStatus.CONTACTED: 1, LeadStatus.QUALIFIED: 2,
    LeadStatus.DISQUALIFIED: 3, LeadStatus.CONVERTED: 4,
}
#: Allowed stage moves. CONVERTED is reached only through `convertLead`, which creates
#: the account and contact; DISQUALIFIED can be reopened by a manager.
TRANSITIONS: dict[LeadStatus, frozenset[LeadStatus]] = {
    LeadStatus.NEW: frozenset({LeadStatus.CONTACTED, LeadStatus.QUALIFIED, LeadStatus.DISQUALIFIED}),
    LeadStatus.CONTACTED: frozenset({LeadStatus.QUALIFIED, LeadStatus.DISQUALIFIED}),
    LeadStatus.QUALIFIED: frozenset({LeadStatus.DISQUALIFIED}),
    LeadStatus.DISQUALIFIED: frozenset({LeadStatus.NEW}),
    LeadStatus.CONVERTED: frozenset(),
}


def lead_scope(row: Mapping[str, Any]) -> uuid.UUID:
    owner = row.get("owner_id")
    return owner if isinstance(owner, uuid.UUID) else UNROUTED_KEY


class LeadHooks(Hooks):
    async def prepare(self, session: AsyncSession, viewer: Viewer,
                      rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return []  # stage changes to record after the flush

    def defaults(self, viewer: Viewer, values: dict[str, Any]) -> dict[str, Any]:
        if not viewer.privileged:
            values["owner_id"] = viewer.user_id
        return values

    def on_create(self, viewer: Viewer, values: dict[str, Any], ctx: list[dict[str, Any]]) -> dict[str, Any]:
        status = LeadStatus(values["status"])
        if status is LeadStatus.CONVERTED:
            raise Rejection("USE_CONVERT_LEAD", "a lead is converted with convertLead, which "
                            "creates the account and contact", "status")
        values["status_changed_at"] = utcnow()
        ctx.append({"id": new_id(), "lead_id": values["id"], "from_status": None,
                    "to_status": status.value, "at": values["status_changed_at"]})
        return values

    def on_update(self, viewer: Viewer, current: Mapping[str, Any], merged: dict[str, Any],
                  ctx: list[dict[str, Any]]) -> dict[str, Any]:
        old, new = LeadStatus(current["status"]), LeadStatus(merged["status"])
        if old is LeadStatus.CONVERTED and any(
                merged.get(c) != current.get(c) for c in merged if not c.startswith("_")):
            raise Rejection("LEAD_CONVERTED", "the lead was converted; edit the account or "
                            "contact it became instead")
        if new is not old:
            if new is LeadStatus.CONVERTED:
                raise Rejection("USE_CONVERT_LEAD", "a lead is converted with convertLead",
                                "status")
            if new not in TRANSITIONS[old] or (old is LeadStatus.DISQUALIFIED and not viewer.privileged):
                raise Rejection("INVALID_TRANSITION", f"a lead cannot go from {old.name} to "
                                f"{new.name}", "status")
            merged["status_changed_at"] = utcnow()
            ctx.append({"id": new_id(), "lead_id": current["id"], "from_status": old.value,
                        "to_status": new.value, "at": merged["status_changed_at"]})
        return merged

    async def finish(self, session: AsyncSession, ctx: list[dict[str, Any]]) -> None:
        if ctx:
            await session.execute(sa.insert(LeadStatusChange), ctx)


def register(registry: Registry) -> None:
    registry.register(EntitySpec(
        name="lead", model=Lead, policy=FieldMerge(ranked={"status": RANK}), hooks=LeadHooks(),
        scope_of=lead_scope,
        server_columns=frozenset({"converted_account_id", "converted_contact_id", "converted_at",
                                  "status_changed_at"}),
        restricted_columns=frozenset({"owner_id", "territory_id"}),
    ))
