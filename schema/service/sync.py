"""Cases: reps open them; service owns status, priority and resolution."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schema.enums import CaseStatus
from schema.hooks import NoRepDelete
from schema.service.tables import Case
from sync.model import utcnow
from sync.policies import FieldMerge
from sync.registry import EntitySpec, Registry, Viewer


class CaseHooks(NoRepDelete):
    def defaults(self, viewer: Viewer, values: dict[str, Any]) -> dict[str, Any]:
        values["opened_by_id"] = viewer.user_id
        values.setdefault("opened_at", utcnow())
        return values

    def on_create(self, viewer: Viewer, values: dict[str, Any], ctx: Any) -> dict[str, Any]:
        values["number"] = f"CS-{values['id'].hex[-10:].upper()}"
        return values

    def on_update(self, viewer: Viewer, current: Mapping[str, Any], merged: dict[str, Any],
                  ctx: Any) -> dict[str, Any]:
        closing = merged["status"] is CaseStatus.CLOSED or merged["status"] == "closed"
        if closing and not current.get("closed_at"):
            merged["closed_at"] = utcnow()
        elif not closing:
            merged["closed_at"] = None
        return merged


def register(registry: Registry) -> None:
    registry.register(EntitySpec(
        name="case", model=Case, policy=FieldMerge(), hooks=CaseHooks(),
        scope_of=lambda r: r["account_id"],
        server_columns=frozenset({"number", "opened_by_id", "closed_at"}),
        restricted_columns=frozenset({"status", "priority", "resolution"}),
    ))
