"""The one scope rule. Every resolver, nested field, `node()` and sync pull reads through it.

A rep reads the accounts they own and everything under them, their own leads and the
public catalogue; a manager reads their reps' data and their own, plus unrouted leads and
the archived catalogue; an admin reads everything. Rows carry a `scope_key` (an account's
id, a user's id for rows a user holds, or a fixed key) and `sync_scope` says who holds
each key, so "readable" is one `scope_key IN (…)` test.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import col

from schema.enums import Role
from schema.identity.tables import User
from sync.registry import Viewer
from sync.tables import PUBLIC_KEY, ScopeKey

#: Inactive products: managers and admins see them, reps do not.
ARCHIVE_KEY = uuid.UUID(int=1)
#: Leads with no owner yet, waiting to be routed.
UNROUTED_KEY = uuid.UUID(int=2)

S = TypeVar("S", bound=sa.Select[Any])


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: Role
    email: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def is_manager(self) -> bool:
        return self.role is Role.MANAGER

    @property
    def is_rep(self) -> bool:
        return self.role is Role.REP

    @property
    def privileged(self) -> bool:
        """May set restricted fields (credit limits, prices, ownership) and see costs."""
        return self.role in (Role.MANAGER, Role.ADMIN)


def team_ids(principal: Principal) -> sa.Select[Any]:
    """The users whose data a principal reads as their own (themselves and their reps)."""
    if principal.is_manager:
        return sa.select(col(User.id)).where(
            sa.or_(col(User.id) == principal.user_id, col(User.manager_id) == principal.user_id)
        )
    return sa.select(sa.literal(principal.user_id, sa.Uuid))


def visible_keys(principal: Principal) -> sa.Select[Any] | None:
    """The scope keys a principal may read; None means every key (admins)."""
    if principal.is_admin:
        return None
    if principal.is_manager:
        return sa.select(col(ScopeKey.key)).where(
            sa.or_(
                col(ScopeKey.holder_id).in_(team_ids(principal)),
                col(ScopeKey.key).in_([PUBLIC_KEY, ARCHIVE_KEY, UNROUTED_KEY]),
            )
        )
    return sa.select(col(ScopeKey.key)).where(
        sa.or_(col(ScopeKey.holder_id) == principal.user_id, col(ScopeKey.key) == PUBLIC_KEY)
    )


def readable(stmt: S, table: Any, principal: Principal) -> S:
    """Restrict a select over a synced table to the rows the principal may read."""
    keys = visible_keys(principal)
    if keys is None:
        return stmt.where(table.deleted.is_(False))
    return stmt.where(table.scope_key.in_(keys), table.deleted.is_(False))


@functools.lru_cache(maxsize=4096)
def viewer_of(principal: Principal) -> Viewer:
    """The engine's view of a principal. Memoised: a viewer is immutable (its keys are a
    subquery, evaluated by each statement that uses it), and building its SQL cost a
    tenth of an empty pull's CPU."""
    return Viewer(
        user_id=principal.user_id,
        keys=visible_keys(principal),
        privileged=principal.privileged,
        principal=principal,
        holders=None if principal.is_admin else team_ids(principal),
    )
