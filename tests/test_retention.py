"""Tombstone retention: a device behind the horizon is reset, never silently gapped;
an active device keeps the history it still needs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from schema.enums import Role
from schema.scope import Principal, viewer_of
from server.db import Database
from sync.model import utcnow
from sync.protocol import MutationIn
from sync.retention import compact
from sync.tables import Change, Client
from tests.conftest import World


async def pull_all(services: Any, db: Database, viewer: Any, client: str,
                   cursor: str | None) -> tuple[list[Any], str, bool]:
    changes: list[Any] = []
    reset = False
    while True:
        async with db.write() as s:
            page = await services.pull.pull(s, viewer, client, cursor, 1000)
        changes += page.changes
        reset = reset or page.reset
        cursor = page.cursor
        if not page.has_more:
            return changes, cursor, reset


async def test_stale_device_is_reset_and_active_one_is_not(app: Any, db: Database,
                                                            world: World) -> None:
    services = app.state.services
    rep = viewer_of(Principal(world.users["rep1"], Role.REP))
    _, stale_cursor, _ = await pull_all(services, db, rep, "stale", None)
    contact = str(uuid.uuid4())
    async with db.write() as s:
        await services.push.apply(s, rep, [MutationIn(0, "contact", "CREATE", contact, None, {
            "accountId": str(world.accounts["rep1a"]), "firstName": "A", "lastName": "B"})])
    async with db.write() as s:
        await services.push.apply(s, rep, [MutationIn(0, "contact", "DELETE", contact)])
    _, active_cursor, _ = await pull_all(services, db, rep, "active", None)
    # the stale device was last seen long ago; the active one just now
    async with db.write() as s:
        await s.execute(sa.update(Client).where(Client.id == "stale").values(
            last_pull_at=utcnow() - timedelta(days=60)))
        await s.execute(sa.update(Change).values(at=utcnow() - timedelta(days=60)))
        report = await compact(s, timedelta(days=30), utcnow())
    assert report.changes_deleted > 0 and report.horizon > 0
    changes, _, reset = await pull_all(services, db, rep, "stale", stale_cursor)
    assert reset, "a cursor behind the horizon must be told to reset"
    assert contact not in {c.id for c in changes}  # its snapshot has no tombstones
    assert {c.id for c in changes if c.entity == "account"} == {
        str(world.accounts["rep1a"]), str(world.accounts["rep1b"])}
    _, _, active_reset = await pull_all(services, db, rep, "active", active_cursor)
    assert not active_reset


async def test_horizon_waits_for_active_devices(app: Any, db: Database, world: World) -> None:
    services = app.state.services
    rep = viewer_of(Principal(world.users["rep1"], Role.REP))
    _, cursor, _ = await pull_all(services, db, rep, "slow", None)
    async with db.write() as s:
        await services.push.apply(s, rep, [MutationIn(0, "contact", "CREATE", str(uuid.uuid4()),
                                                      None, {"accountId": str(world.accounts["rep1a"]),
                                                             "firstName": "A", "lastName": "B"})])
        await s.execute(sa.update(Change).values(at=utcnow() - timedelta(days=60)))
    async with db.write() as s:
        await compact(s, timedelta(days=30), utcnow())
    changes, _, reset = await pull_all(services, db, rep, "slow", cursor)
    assert not reset and [c.entity for c in changes] == ["contact"]
