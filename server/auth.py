"""Who is calling: the bearer token → a `Principal`, checked against the user row so a
deactivated user's still-valid token is refused immediately."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.identity.tables import User
from schema.scope import Principal
from server.tokens import TokenError, TokenService

#: Built once: constructing a statement costs about as much as running it.
_USER = sa.select(col(User.id), col(User.role), col(User.email), col(User.active)
                  ).where(col(User.id) == sa.bindparam("user_id"))


async def authenticate(session: AsyncSession, tokens: TokenService,
                       authorization: str | None) -> tuple[Principal | None, str | None]:
    """(principal, None) for a good token; (None, reason) for a bad one; (None, None) for none."""
    if not authorization:
        return None, None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None, "use the header Authorization: Bearer <accessToken>"
    try:
        claims = tokens.verify_access(token.strip())
    except TokenError as e:
        return None, f"{e.code}: {e.message}"
    # Every request does this: a Core row, not an ORM entity in the identity map.
    user = (await session.execute(_USER, {"user_id": claims.user_id})).one_or_none()
    if user is None or not user.active:
        return None, "INVALID_TOKEN: the account is deactivated"
    return Principal(user_id=user.id, role=user.role, email=user.email), None
