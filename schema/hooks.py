"""Default entity rules, which the per-domain hooks in `schema/*/sync.py` refine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from schema.scope import Principal
from sync.registry import Rejection, Viewer


def principal_of(viewer: Viewer) -> Principal:
    assert isinstance(viewer.principal, Principal)
    return viewer.principal


class Hooks:
    """Rows anyone in scope may create, edit and delete, with no extra rules."""

    async def prepare(
        self, session: AsyncSession, viewer: Viewer, rows: Sequence[Mapping[str, Any]]
    ) -> Any:
        return None

    def defaults(self, viewer: Viewer, values: dict[str, Any]) -> dict[str, Any]:
        return values

    def on_create(self, viewer: Viewer, values: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return values

    def on_update(
        self, viewer: Viewer, current: Mapping[str, Any], merged: dict[str, Any], ctx: Any
    ) -> dict[str, Any]:
        return merged

    def on_delete(self, viewer: Viewer, current: Mapping[str, Any], ctx: Any) -> None:
        return None

    async def finish(self, session: AsyncSession, ctx: Any) -> None:
        return None

    def observe(self, ctx: Any, entity: str, row: Mapping[str, Any]) -> None:
        return None


class ReferenceHooks(Hooks):
    """Reference data (catalogue, prices, invoices, territories): managers and admins
    write it, reps only read it."""

    def _check(self, viewer: Viewer) -> None:
        if not viewer.privileged:
            raise Rejection("READ_ONLY", "this record is maintained by the back office; "
                            "reps can read it but not change it")

    def on_create(self, viewer: Viewer, values: dict[str, Any], ctx: Any) -> dict[str, Any]:
        self._check(viewer)
        return values

    def on_update(
        self, viewer: Viewer, current: Mapping[str, Any], merged: dict[str, Any], ctx: Any
    ) -> dict[str, Any]:
        self._check(viewer)
        return merged

    def on_delete(self, viewer: Viewer, current: Mapping[str, Any], ctx: Any) -> None:
        self._check(viewer)


class NoRepDelete(Hooks):
    def on_delete(self, viewer: Viewer, current: Mapping[str, Any], ctx: Any) -> None:
        if not viewer.privileged:
            raise Rejection("FORBIDDEN", "only a manager can delete this record")
