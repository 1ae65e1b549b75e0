"""Users: creation (with their scope key) and lookups."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.enums import Role
from schema.identity.passwords import hash_password
from schema.identity.tables import User
from sync.model import new_id
from sync.tables import ScopeKey


async def create_user(
    session: AsyncSession, *, email: str, full_name: str, password: str, role: Role,
    manager_id: uuid.UUID | None = None, territory_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None, password_hash: str | None = None,
) -> User:
    """Insert a user and the scope key they hold (their own leads and tasks live under it)."""
    user = User(
        id=user_id or new_id(), email=email.strip().lower(), full_name=full_name,
        password_hash=password_hash or hash_password(password), role=role,
        manager_id=manager_id, territory_id=territory_id,
        max_discount_bp=1000 if role is Role.REP else 2500,
    )
    session.add(user)
    await session.flush()
    await session.execute(sa.insert(ScopeKey).values(key=user.id, holder_id=user.id, kind="user"))
    return user


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    stmt = sa.select(User).where(col(User.email) == email.strip().lower())
    return (await session.execute(stmt)).scalar_one_or_none()
