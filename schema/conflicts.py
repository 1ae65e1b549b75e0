"""Reviewing conflicts: who may see one, and resolving it through the normal write path."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.scope import Principal, team_ids, viewer_of, visible_keys
from sync.model import dialect_name, utcnow
from sync.protocol import MutationIn, MutationOut
from sync.push import PushEngine
from sync.registry import Registry
from sync.tables import Conflict

Choice = Literal["SERVER", "CLIENT"]


def visible_conflicts(principal: Principal) -> sa.Select[Any]:
    """Conflicts a principal may read: ones they or their team caused, and ones on
    records in their scope (a rep sees edits others made to their accounts)."""
    stmt = sa.select(Conflict)
    keys = visible_keys(principal)
    if keys is None:
        return stmt
    return stmt.where(sa.or_(col(Conflict.user_id).in_(team_ids(principal)),
                             col(Conflict.scope_key).in_(keys)))


async def readable_records(session: AsyncSession, registry: Registry, principal: Principal,
                           conflicts: Sequence[Conflict]) -> set[tuple[str, uuid.UUID]]:
    """(entity, id) of the conflicts' records the principal can read now: where each
    record is today, not where it was when the conflict arose (one statement per
    entity)."""
    keys = visible_keys(principal)
    if keys is None:
        return {(c.entity, c.row_id) for c in conflicts}
    by_entity: dict[str, set[uuid.UUID]] = defaultdict(set)
    for c in conflicts:
        by_entity[c.entity].add(c.row_id)
    out: set[tuple[str, uuid.UUID]] = set()
    for entity, ids in by_entity.items():
        spec = registry.get(entity)
        if spec is None:
            continue
        t = spec.table
        rows = await session.execute(
            sa.select(t.c.id).where(t.c.id.in_(ids), t.c.scope_key.in_(keys)))
        out.update((entity, rid) for rid in rows.scalars())
    return out


@dataclass(frozen=True)
class Shown:
    """The values of a conflict one reader may see."""

    base: dict[str, Any] | None
    server: dict[str, Any] | None
    client: dict[str, Any] | None
    outcome: dict[str, Any] | None


def shown(conflict: Conflict, record_readable: bool, private: frozenset[str]) -> Shown:
    """A conflict's values as a reader may see them. Someone who caused a conflict on a
    record that has since left their scope sees their own side only: the server's values
    are the new holder's. `private` (wire names of fields such as costs) is left out for
    readers who may not see it."""

    def strip(values: dict[str, Any] | None) -> dict[str, Any] | None:
        if values is None or not private:
            return values
        return {k: v for k, v in values.items() if k not in private}

    if not record_readable:
        return Shown(None, None, strip(conflict.client), None)
    return Shown(strip(conflict.base), strip(conflict.server), strip(conflict.client),
                 strip(conflict.outcome))


class ResolutionRefused(Exception):
    """Re-applying the kept side did not apply cleanly; the caller rolls back."""

    def __init__(self, out: MutationOut) -> None:
        super().__init__(out.error.message if out.error else out.status)
        self.out = out


async def resolve(session: AsyncSession, engine: PushEngine, principal: Principal,
                  conflict_id: uuid.UUID, choice: Choice) -> Conflict | None:
    """Keep one side, through the normal write path (so the usual rules still hold: a rep
    cannot push a credit limit through here either).

    CLIENT re-applies the device's losing values (an edit, or a delete). SERVER restores
    the server's values the device overwrote (when the device had won); when the server
    already won there is nothing to write. Anything short of a clean apply raises
    `ResolutionRefused`, so the conflict stays open and nothing half-happens.
    """
    stmt = visible_conflicts(principal).where(col(Conflict.id) == conflict_id)
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update()
    conflict = (await session.execute(stmt)).scalar_one_or_none()
    if conflict is None or conflict.resolved:
        return conflict
    mutation = _mutation_for(conflict, choice)
    if mutation is not None:
        out = (await engine.apply(session, viewer_of(principal), [mutation]))[0]
        if out.status not in ("APPLIED", "MERGED"):
            raise ResolutionRefused(out)
    conflict.resolved = True
    conflict.resolution = choice
    conflict.resolved_by = principal.user_id
    conflict.resolved_at = utcnow()
    return conflict


def _mutation_for(conflict: Conflict, choice: Choice) -> MutationIn | None:
    rid = str(conflict.row_id)
    if choice == "CLIENT":
        kept = dict(conflict.client or {})
        if kept.pop("deleted", None) is True:
            return MutationIn(0, conflict.entity, "DELETE", rid)
        return MutationIn(0, conflict.entity, "UPDATE", rid, None, kept) if kept else None
    # SERVER: restore the server's values of the contested fields where the outcome
    # took the device's instead.
    server, outcome = conflict.server or {}, conflict.outcome or {}
    restore = {f: server[f] for f in conflict.fields
               if f in server and f in outcome and server[f] != outcome[f]}
    return MutationIn(0, conflict.entity, "UPDATE", rid, None, restore) if restore else None
