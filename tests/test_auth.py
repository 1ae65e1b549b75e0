"""Tokens and sign-in: rotation, reuse detection, expiry, pinned algorithm, throttling."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
import warnings
from collections import Counter
from datetime import timedelta
from typing import Any

import jwt
import pytest
import sqlalchemy as sa

from schema.identity.tables import User
from server.settings import DEV_SECRET, Settings
from server.tokens import TokenError, TokenService
from tests.conftest import LOGIN, World, login

REFRESH = """mutation($t: String!) { refreshToken(token: $t) { __typename
  ... on LoginSuccess { accessToken refreshToken } ... on AuthError { code } } }"""
LOGOUT = "mutation($t: String!) { logout(refreshToken: $t) { ok } }"
ME = "{ me { email role } }"


async def me(client: Any, token: str) -> dict[str, Any]:
    r = await client.post("/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"})
    return r.json()


async def test_login_then_me(client: Any, world: World) -> None:
    tokens = await login(client, "manager1@example.com")
    assert tokens["__typename"] == "LoginSuccess"
    assert (await me(client, tokens["accessToken"]))["data"]["me"] == {
        "email": "manager1@example.com", "role": "MANAGER"}


async def test_refresh_rotates_and_reuse_revokes_the_family(client: Any, world: World) -> None:
    first = await login(client, "rep1@example.com")
    r1 = (await client.post("/graphql", json={"query": REFRESH, "variables": {"t": first["refreshToken"]}})).json()
    second = r1["data"]["refreshToken"]
    assert second["__typename"] == "LoginSuccess"
    reuse = (await client.post("/graphql", json={"query": REFRESH, "variables": {"t": first["refreshToken"]}})).json()
    assert reuse["data"]["refreshToken"] == {"__typename": "AuthError", "code": "TOKEN_REUSED"}
    # the reuse signed the whole login out: the newest refresh token is dead too
    after = (await client.post("/graphql", json={"query": REFRESH, "variables": {"t": second["refreshToken"]}})).json()
    assert after["data"]["refreshToken"]["code"] == "INVALID_TOKEN"


async def test_logout_revokes(client: Any, world: World) -> None:
    tokens = await login(client, "rep1@example.com")
    out = (await client.post("/graphql", json={"query": LOGOUT, "variables": {"t": tokens["refreshToken"]}})).json()
    assert out["data"]["logout"] == {"ok": True}
    again = (await client.post("/graphql", json={"query": REFRESH, "variables": {"t": tokens["refreshToken"]}})).json()
    assert again["data"]["refreshToken"]["code"] == "INVALID_TOKEN"


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize("attack", ["alg_none", "refresh_as_access", "wrong_aud", "wrong_iss",
                                    "expired", "not_yet_valid", "tampered", "unknown_kid",
                                    "other_secret", "alg_hs512"])
async def test_forged_or_misused_tokens_are_refused(client: Any, world: World, settings: Settings,
                                                    attack: str) -> None:
    tokens = await login(client, "rep1@example.com")
    good = jwt.decode(tokens["accessToken"], options={"verify_signature": False})
    now = int(time.time())
    secret, headers, claims = settings.jwt_secret, {"kid": settings.jwt_kid}, dict(good)
    if attack == "alg_none":
        token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{_b64(good)}."
    else:
        if attack == "refresh_as_access":
            token = tokens["refreshToken"]
        else:
            if attack == "wrong_aud":
                claims["aud"] = "someone-else"
            elif attack == "wrong_iss":
                claims["iss"] = "evil"
            elif attack == "expired":
                claims["exp"] = now - 10
            elif attack == "not_yet_valid":
                claims["nbf"] = now + 3600
            elif attack == "unknown_kid":
                headers = {"kid": "nope"}
            elif attack == "other_secret":
                secret = "x" * 40
            # Algorithm confusion: the right key under another algorithm must not pass.
            algorithm = "HS512" if attack == "alg_hs512" else "HS256"
            with warnings.catch_warnings():  # the forger's short HS512 key is the point
                warnings.simplefilter("ignore")
                token = jwt.encode(claims, secret, algorithm=algorithm, headers=headers)
            if attack == "tampered":
                head, _payload, sig = tokens["accessToken"].split(".")
                forged = dict(good, sub=str(world.users["admin"]))
                token = f"{head}.{_b64(forged)}.{sig}"
    body = await me(client, token)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", (attack, body)


async def test_deactivated_users_token_is_refused_immediately(client: Any, db: Any, world: World) -> None:
    tokens = await login(client, "rep1@example.com")
    async with db.write() as s:
        await s.execute(sa.update(User).where(User.id == world.users["rep1"]).values(active=False))
    body = await me(client, tokens["accessToken"])
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_brute_force_is_throttled_with_retry_after(client: Any, world: World) -> None:
    for _ in range(5):
        assert (await login(client, "rep1@example.com", "wrong-password"))["code"] == "INVALID_CREDENTIALS"
    r = await client.post("/graphql", json={"query": LOGIN, "variables": {"e": "rep1@example.com",
                                                                        "p": "demo-password"}})
    out = r.json()["data"]["login"]
    assert out["code"] == "RATE_LIMITED" and out["retryAfterSeconds"] > 0
    assert int(r.headers["retry-after"]) == out["retryAfterSeconds"]


async def test_guesses_sent_at_once_are_throttled_too(client: Any, world: World) -> None:
    """Guesses in flight together all pass the first check, but each is decided under
    the keys' locks: only the first five get a real answer, and the right password
    among the rest is answered RATE_LIMITED too, so it reveals nothing."""
    guesses = [f"guess-{i}" for i in range(39)] + ["demo-password"]
    outs = await asyncio.gather(*[login(client, "rep1@example.com", g) for g in guesses])
    codes = Counter(o.get("code", "OK") for o in outs)
    assert codes["INVALID_CREDENTIALS"] <= 5 and codes["OK"] <= 1, codes
    assert codes["RATE_LIMITED"] >= 34, codes


async def test_people_signing_in_at_once_from_one_address_are_not_throttled(
        client: Any, world: World) -> None:
    """Only failures count: an office behind one address signs everyone in at once."""
    emails = [f"{u}@example.com" for u in ("rep1", "rep2", "rep3", "manager1", "manager2",
                                           "admin")] * 2
    outs = await asyncio.gather(*[login(client, e) for e in emails])
    assert all("accessToken" in o for o in outs), outs


async def test_signing_in_does_not_reset_the_addresss_count(client: Any, world: World) -> None:
    """Someone with an account of their own cannot spray guesses over other emails from
    one address by signing themselves in between (a success takes back its own attempt
    only)."""
    async def guess(i: int) -> str:
        return str((await login(client, f"victim{i}@example.com", "guess"))["code"])

    async def sign_in() -> dict[str, Any]:
        return await login(client, "rep2@example.com")

    assert [await guess(0), await guess(1)] == ["INVALID_CREDENTIALS"] * 2
    assert "accessToken" in await sign_in()
    assert [await guess(2), await guess(3)] == ["INVALID_CREDENTIALS"] * 2
    assert "accessToken" in await sign_in()
    # Five failures from the address in the window: the limit, successes or not.
    assert [await guess(4), await guess(5)] == ["INVALID_CREDENTIALS", "RATE_LIMITED"]
    assert (await sign_in())["code"] == "RATE_LIMITED"


async def test_key_rotation_accepts_old_kid(client: Any, world: World, settings: Settings) -> None:
    old = TokenService(Settings(jwt_secret="old-secret-" + "y" * 32, jwt_kid="k0"))
    token = old._encode(world.users["rep1"], "access", __import__("datetime").timedelta(minutes=5),
                        __import__("uuid").uuid4())
    assert "errors" in await me(client, token)
    rotated = Settings(**{**settings.__dict__, "jwt_old_secrets": "k0:old-secret-" + "y" * 32})
    assert rotated.verification_keys["k0"].startswith("old-secret-")
    assert TokenService(rotated).verify_access(token).user_id == world.users["rep1"]


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        Settings.from_env({"FIELDSYNC_ENV": "production"}, dotenv=None)
    with pytest.raises(ValueError):
        Settings(env="production", jwt_secret=DEV_SECRET).check()
    Settings.from_env({"FIELDSYNC_ENV": "production", "FIELDSYNC_JWT_SECRET": "s" * 40}, dotenv=None)


AUDIT = "{ auditEvents { kind email userId clientAddress detail } }"


async def test_security_events_land_in_the_audit_log(client: Any, world: World, as_user: Any) -> None:
    await login(client, "rep1@example.com", "wrong-password")
    first = await login(client, "rep1@example.com")
    await client.post("/graphql", json={"query": REFRESH, "variables": {"t": first["refreshToken"]}})
    await client.post("/graphql", json={"query": REFRESH, "variables": {"t": first["refreshToken"]}})
    rep = await as_user("rep1")
    await rep.ok("""mutation($input: SyncPushInput!) { syncPush(input: $input) { lastMutationId } }""",
                 {"input": {"clientId": "c", "protocolVersion": 1, "mutations": [
                     {"mutationId": 1, "entity": "account", "op": "UPDATE",
                      "id": str(world.accounts["rep3a"]), "baseVersion": 1,
                      "fields": {"name": "mine now"}}]}})
    refused = await rep.raw(AUDIT)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    admin = await as_user("admin")
    kinds = [e["kind"] for e in (await admin.ok(AUDIT))["auditEvents"]]
    for kind in ("login_failed", "login_succeeded", "token_reused", "scope_refused"):
        assert kind in kinds, kinds
    events = (await admin.ok(AUDIT))["auditEvents"]
    scope = next(e for e in events if e["kind"] == "scope_refused")
    assert scope["userId"] == str(world.users["rep1"]) and scope["email"] == "rep1@example.com"
    assert scope["detail"]["ids"] == [str(world.accounts["rep3a"])]
    reuse = next(e for e in events if e["kind"] == "token_reused")
    assert reuse["userId"] == str(world.users["rep1"])  # whose stolen or replayed token it was


def test_a_verified_token_still_expires_on_time(settings: Settings) -> None:
    # Verification is memoised per token string; expiry must not be.
    service = TokenService(settings)
    user = uuid.uuid4()
    token = service._encode(user, "access", timedelta(seconds=2), uuid.uuid4())
    assert service.verify_access(token).user_id == user
    assert service.verify_access(token).user_id == user  # from the memo
    time.sleep(2.1)
    with pytest.raises(TokenError) as caught:
        service.verify_access(token)
    assert caught.value.code == "TOKEN_EXPIRED"
