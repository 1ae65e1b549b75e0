"""login, refreshToken, logout."""

from __future__ import annotations

import asyncio
from typing import Annotated

import strawberry
from strawberry.types import Info

from schema import audit
from schema.identity import login as throttle
from schema.identity.passwords import verify_password
from schema.identity.service import user_by_email


@strawberry.type
class LoginSuccess:
    access_token: str
    refresh_token: str
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")


@strawberry.type
class AuthError:
    code: str
    message: str
    retry_after_seconds: int | None = None


LoginResult = Annotated[LoginSuccess | AuthError, strawberry.union("LoginResult")]


@strawberry.type
class LogoutPayload:
    ok: bool


def _success(pair: object) -> LoginSuccess:
    return LoginSuccess(access_token=pair.access_token, refresh_token=pair.refresh_token,  # type: ignore[attr-defined]
                        expires_in=pair.expires_in)  # type: ignore[attr-defined]


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Sign in. Wrong password and unknown email look alike; "
                         "repeated failures are throttled (see retryAfterSeconds).")
    async def login(self, info: Info, email: str, password: str) -> LoginResult:
        ctx = info.context
        email_key, address_key = f"email:{email.strip().lower()[:300]}", f"ip:{ctx.client_address}"
        max_failures, window = ctx.login_limits
        async with ctx.db.read() as session:
            wait = await throttle.retry_after(session, [email_key, address_key], max_failures,
                                              window)
            user = None if wait else await user_by_email(session, email)
        failed = True
        if not wait:
            # argon2 is slow on purpose: run it off the event loop and outside any write lock.
            ok = await asyncio.to_thread(verify_password, user.password_hash if user else None,
                                         password)
            failed = not ok or user is None or not user.active
            async with ctx.db.write() as session:
                # Decided under the keys' locks: a guess that raced past the check above
                # while others failed learns nothing (see schema/identity/login.py).
                wait = await throttle.settle(session, email_key, address_key, failed,
                                             max_failures, window)
                if not wait and failed:
                    await audit.record(session, audit.LOGIN_FAILED, email=email[:320],
                                       address=ctx.client_address,
                                       user_id=user.id if user else None)
                elif not wait and user is not None:
                    pair = await ctx.tokens.issue(session, user)
                    await audit.record(session, audit.LOGIN_SUCCEEDED, user_id=user.id,
                                       email=user.email, address=ctx.client_address)
        if wait:
            async with ctx.db.write() as session:
                await audit.record(session, audit.LOGIN_THROTTLED, email=email[:320],
                                   address=ctx.client_address)
            if ctx.response is not None:
                ctx.response.headers["Retry-After"] = str(wait)
            return AuthError(code="RATE_LIMITED", message=f"too many failed sign-ins; "
                             f"try again in {wait} s", retry_after_seconds=wait)
        if failed:
            return AuthError(code="INVALID_CREDENTIALS", message="wrong email or password")
        return _success(pair)

    @strawberry.mutation(description="Exchange a refresh token for a new pair. Each refresh "
                         "token works once; presenting a used one signs the login out everywhere.")
    async def refresh_token(self, info: Info, token: str) -> LoginResult:
        ctx = info.context
        async with ctx.db.write() as session:
            result = await ctx.tokens.rotate(session, token)
            if getattr(result, "code", None) == "TOKEN_REUSED":
                await audit.record(session, audit.TOKEN_REUSED, address=ctx.client_address,
                                   user_id=getattr(result, "user_id", None),
                                   detail={"action": "refresh-token family revoked"})
        if hasattr(result, "code"):
            return AuthError(code=result.code, message=result.message)
        return _success(result)

    @strawberry.mutation(description="Revoke a refresh token and every token of its login.")
    async def logout(self, info: Info, refresh_token: str) -> LogoutPayload:
        ctx = info.context
        async with ctx.db.write() as session:
            error = await ctx.tokens.revoke(session, refresh_token)
        return LogoutPayload(ok=error is None)
