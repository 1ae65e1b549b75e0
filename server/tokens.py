"""Access and refresh tokens (RFC 8725 practices).

Access tokens are short-lived HS256 JWTs with `exp/iat/nbf/iss/aud/sub/jti/typ`; the
algorithm is pinned and `exp`, `iss`, `aud` are required on decode, and `typ` must be
"access", so a refresh token can never pass as an access token. Refresh tokens are
JWTs too, but each is also a database row: rotating one marks it used; presenting a
used one again revokes its whole family (the login it came from).
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.identity.tables import RefreshToken, User
from server.settings import Settings
from sync.model import new_id, utcnow

ALGORITHM = "HS256"


class TokenError(Exception):
    def __init__(self, code: str, message: str, user_id: uuid.UUID | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.user_id = user_id  # whose token it was, when known (for the audit log)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    jti: str
    issued_at: int


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._keys = settings.verification_keys
        self._verified = functools.lru_cache(maxsize=4096)(self._verify_access)

    def _encode(self, user_id: uuid.UUID, typ: str, ttl: timedelta, jti: uuid.UUID,
                extra: dict[str, str] | None = None) -> str:
        now = utcnow()
        claims = {
            "sub": str(user_id), "typ": typ, "jti": str(jti), "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience, "iat": now, "nbf": now, "exp": now + ttl,
            **(extra or {}),
        }
        return jwt.encode(claims, self.settings.jwt_secret, algorithm=ALGORITHM,
                          headers={"kid": self.settings.jwt_kid})

    def _decode(self, token: str, typ: str) -> dict[str, object]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise TokenError("INVALID_TOKEN", "malformed token") from None
        key = self._keys.get(str(kid))
        if key is None:
            raise TokenError("INVALID_TOKEN", "unknown signing key")
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("TOKEN_EXPIRED", "the token has expired") from None
        except jwt.PyJWTError:
            raise TokenError("INVALID_TOKEN", "the token is not valid") from None
        if claims.get("typ") != typ:
            raise TokenError("INVALID_TOKEN", f"not an {typ} token")
        return claims

    def verify_access(self, token: str) -> AccessClaims:
        claims, expires = self._verified(token)
        if time.time() >= expires:  # a cached verdict still expires on time
            raise TokenError("TOKEN_EXPIRED", "the token has expired")
        return claims

    def _verify_access(self, token: str) -> tuple[AccessClaims, int]:
        """Decode and check a token. Memoised per token string (only successes are, as
        `lru_cache` keeps no exceptions): a device sends the same token with every
        request, and pyjwt's parsing cost more than the rest of an empty pull's auth."""
        claims = self._decode(token, "access")
        try:
            return AccessClaims(uuid.UUID(str(claims["sub"])), str(claims["jti"]),
                                int(claims["iat"])), int(claims["exp"])  # type: ignore[call-overload]
        except (ValueError, TypeError):
            raise TokenError("INVALID_TOKEN", "the token is not valid") from None

    async def issue(self, session: AsyncSession, user: User, family: uuid.UUID | None = None) -> TokenPair:
        ttl = timedelta(minutes=self.settings.access_token_minutes)
        access = self._encode(user.id, "access", ttl, new_id(), {"role": user.role.value})
        rid = new_id()
        rttl = timedelta(days=self.settings.refresh_token_days)
        session.add(RefreshToken(id=rid, user_id=user.id, family_id=family or rid,
                                 expires_at=utcnow() + rttl))
        refresh = self._encode(user.id, "refresh", rttl, rid)
        return TokenPair(access, refresh, int(ttl.total_seconds()))

    async def rotate(self, session: AsyncSession, token: str) -> TokenPair | TokenError:
        """Exchange a refresh token for a new pair; reuse of a rotated one revokes all.

        Errors are returned, not raised, so the caller's unit of work still commits a
        family revocation.
        """
        try:
            claims = self._decode(token, "refresh")
        except TokenError as e:
            return e
        row = await session.get(RefreshToken, uuid.UUID(str(claims["jti"])), with_for_update=True)
        if row is None or row.revoked_at is not None:
            return TokenError("INVALID_TOKEN", "the refresh token was revoked")
        if row.used_at is not None:
            await self.revoke_family(session, row.family_id)
            return TokenError("TOKEN_REUSED", "this refresh token was already used; every "
                              "session of this login was signed out", row.user_id)
        user = await session.get(User, row.user_id)
        if user is None or not user.active:
            return TokenError("INVALID_TOKEN", "the account is deactivated")
        row.used_at = utcnow()
        return await self.issue(session, user, family=row.family_id)

    async def revoke(self, session: AsyncSession, token: str) -> TokenError | None:
        try:
            claims = self._decode(token, "refresh")
        except TokenError as e:
            return e
        row = await session.get(RefreshToken, uuid.UUID(str(claims["jti"])))
        if row is not None:
            await self.revoke_family(session, row.family_id)
        return None

    @staticmethod
    async def revoke_family(session: AsyncSession, family: uuid.UUID) -> None:
        await session.execute(
            sa.update(RefreshToken)
            .where(col(RefreshToken.family_id) == family, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=utcnow())
        )
