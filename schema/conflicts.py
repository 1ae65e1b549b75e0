"""Reviewing conflicts: who may see one, and resolving it through the normal write path."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.scope import Principal, team_ids, viewer_of, visible_keys
from sync.model import dialect_name, utcnow
from sync.protocol import MutationIn, MutationOut
from sync.push import PushEngine
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


async def resolve(session: AsyncSession, engine: PushEngine, principal: Principal,
                  conflict_id: uuid.UUID, choice: Choice) -> tuple[Conflict | None, MutationOut | None]:
    """Keep one side. SERVER keeps what is stored; CLIENT re-applies the losing values
    (an edit, or a delete) as the resolver, so the usual rules still hold: a rep
    cannot push a credit limit through here either."""
    stmt = visible_conflicts(principal).where(col(Conflict.id) == conflict_id)
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update()
    conflict = (await session.execute(stmt)).scalar_one_or_none()
    if conflict is None or conflict.resolved:
        return conflict, None
    out = None
    if choice == "CLIENT" and conflict.client:
        client = dict(conflict.client)
        if client.pop("deleted", None) is True:
            mutation = MutationIn(0, conflict.entity, "DELETE", str(conflict.row_id))
        else:
            mutation = MutationIn(0, conflict.entity, "UPDATE", str(conflict.row_id), None, client)
        out = (await engine.apply(session, viewer_of(principal), [mutation]))[0]
        if out.status == "REJECTED":
            return conflict, out
    conflict.resolved = True
    conflict.resolution = choice
    conflict.resolved_by = principal.user_id
    conflict.resolved_at = utcnow()
    return conflict, out
