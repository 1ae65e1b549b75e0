"""Visit notes (append-only, author-owned) and tasks (field-level merge)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schema.activities.tables import Task, VisitNote
from schema.hooks import Hooks
from sync.model import utcnow
from sync.policies import AppendOnly, FieldMerge
from sync.registry import EntitySpec, Registry, Rejection, Viewer


class VisitNoteHooks(Hooks):
    def defaults(self, viewer: Viewer, values: dict[str, Any]) -> dict[str, Any]:
        values["author_id"] = viewer.user_id
        values.setdefault("visited_at", utcnow())
        return values

    def _author_only(self, viewer: Viewer, current: Mapping[str, Any]) -> None:
        if current["author_id"] != viewer.user_id and not viewer.privileged:
            raise Rejection("NOT_AUTHOR", "only the rep who wrote a visit note can change it")

    def on_update(self, viewer: Viewer, current: Mapping[str, Any], merged: dict[str, Any],
                  ctx: Any) -> dict[str, Any]:
        self._author_only(viewer, current)
        return merged

    def on_delete(self, viewer: Viewer, current: Mapping[str, Any], ctx: Any) -> None:
        self._author_only(viewer, current)


class TaskHooks(Hooks):
    def defaults(self, viewer: Viewer, values: dict[str, Any]) -> dict[str, Any]:
        values.setdefault("assignee_id", viewer.user_id)
        if values.get("done"):
            values["done_at"] = utcnow()
        return values

    def on_update(self, viewer: Viewer, current: Mapping[str, Any], merged: dict[str, Any],
                  ctx: Any) -> dict[str, Any]:
        if merged.get("done") and not current.get("done"):
            merged["done_at"] = utcnow()
        elif not merged.get("done"):
            merged["done_at"] = None
        return merged


def task_scope(row: Mapping[str, Any]) -> Any:
    return row.get("account_id") or row["assignee_id"]


def register(registry: Registry) -> None:
    registry.register(EntitySpec(
        name="visitNote", model=VisitNote, policy=AppendOnly(), hooks=VisitNoteHooks(),
        scope_of=lambda r: r["account_id"], server_columns=frozenset({"author_id"}),
        accept_after_move=True,
    ))
    registry.register(EntitySpec(
        name="task", model=Task,
        policy=FieldMerge(), hooks=TaskHooks(), scope_of=task_scope,
        server_columns=frozenset({"done_at"}),
        restricted_columns=frozenset({"assignee_id", "dedupe_key"}),
    ))
