"""No change is ever skipped by a pull, however commits interleave.

Many writers run overlapping transactions (each sleeps mid-transaction, so they commit
in a different order than they started) while a puller pulls continuously. The puller
must receive every created row exactly once, and no writer may see "database is
locked" on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from typing import Any

import sqlalchemy as sa

from schema.enums import Role
from schema.scope import Principal, viewer_of
from server.db import Database
from server.notify import Notifier
from sync.protocol import MutationIn
from sync.tables import Change, LogHead
from tests.conftest import World

WRITERS, TRANSACTIONS, ROWS_PER_TX = 8, 12, 3


async def test_concurrent_commits_are_pulled_exactly_once(app: Any, db: Database, world: World) -> None:
    services = app.state.services
    writer_viewer = viewer_of(Principal(world.users["rep1"], Role.REP))
    reader = viewer_of(Principal(world.users["admin"], Role.ADMIN))
    account = str(world.accounts["rep1a"])
    created: list[str] = []
    rng = random.Random(7)

    async with db.write() as s:  # the puller's starting point, before any writer runs
        cursor = (await services.pull.pull(s, reader, "puller", None, 1000)).cursor
        while True:
            page = await services.pull.pull(s, reader, "puller", cursor, 1000)
            cursor = page.cursor
            if not page.has_more:
                break

    async def writer(n: int) -> None:
        for _ in range(TRANSACTIONS):
            ids = [str(uuid.uuid4()) for _ in range(ROWS_PER_TX)]
            async with db.write() as s:
                await asyncio.sleep(rng.random() * 0.01)
                outs = await services.push.apply(s, writer_viewer, [
                    MutationIn(0, "contact", "CREATE", i, None,
                               {"accountId": account, "firstName": f"w{n}", "lastName": i})
                    for i in ids])
                assert all(o.status == "APPLIED" for o in outs), outs
                await asyncio.sleep(rng.random() * 0.01)
            created.extend(ids)

    seen: Counter[str] = Counter()
    done = asyncio.Event()

    async def puller() -> None:
        nonlocal cursor
        while True:
            finished = done.is_set()
            async with db.write() as s:
                page = await services.pull.pull(s, reader, "puller", cursor, 50)
            cursor = page.cursor
            seen.update(c.id for c in page.changes if c.entity == "contact")
            if finished and not page.has_more:
                return
            await asyncio.sleep(0 if page.has_more else 0.005)

    pull_task = asyncio.create_task(puller())
    await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    done.set()
    await pull_task
    assert len(created) == WRITERS * TRANSACTIONS * ROWS_PER_TX
    missing = set(created) - set(seen)
    twice = {k: v for k, v in seen.items() if v > 1}
    assert not missing, f"{len(missing)} changes were skipped, e.g. {sorted(missing)[:3]}"
    assert not twice, f"delivered more than once: {twice}"


async def test_log_is_numbered_in_write_order_after_the_head(app: Any, db: Database,
                                                             world: World) -> None:
    """Two flushes in one transaction with a rolled-back savepoint between them: the
    committed log continues the head without a hole, in the order the rows were written,
    and no provisional (negative) number is left behind (PostgreSQL numbers rows inside
    COMMIT, SQLite as it writes them)."""
    services = app.state.services
    viewer = viewer_of(Principal(world.users["rep1"], Role.REP))
    account = str(world.accounts["rep1a"])

    def contacts(*names: str) -> list[MutationIn]:
        return [MutationIn(0, "contact", "CREATE", str(uuid.uuid4()), None,
                           {"accountId": account, "firstName": "n", "lastName": name})
                for name in names]

    first, dropped, second = contacts("a", "b"), contacts("x"), contacts("c", "d", "e")
    async with db.write() as s:
        head = (await s.execute(sa.select(LogHead.last_seq))).scalar_one()
        await services.push.apply(s, viewer, first)
        with contextlib.suppress(RuntimeError):
            async with s.begin_nested():
                await services.push.apply(s, viewer, dropped)
                raise RuntimeError("roll the savepoint back")
        await services.push.apply(s, viewer, second)
    async with db.read() as s:
        rows = (await s.execute(sa.select(Change.seq, Change.row_id).where(Change.seq > head)
                                .order_by(Change.seq))).all()
        new_head = (await s.execute(sa.select(LogHead.last_seq))).scalar_one()
        provisional = (await s.execute(sa.select(sa.func.count()).select_from(Change)
                                       .where(Change.seq < 0))).scalar_one()
    assert [str(r.row_id) for r in rows] == [m.id for m in first + second]
    assert [r.seq for r in rows] == list(range(head + 1, head + 6))
    assert new_head == head + 5
    assert provisional == 0


async def test_every_commit_that_grows_the_log_announces_its_head(app: Any, db: Database,
                                                                   world: World) -> None:
    """An instance learns the new head of a commit it did not make, without polling. On
    PostgreSQL the commit's own NOTIFY carries it (nobody calls `committed()`: another
    instance or a script wrote); on SQLite the local writer's `committed()` wakes the
    head watcher."""
    services = app.state.services
    notifier = Notifier(db, services.notifier.pg_dsn, poll_interval=60)
    await notifier.start()
    try:
        before = notifier.head
        waiting = asyncio.create_task(notifier.wait_beyond(before))
        await asyncio.sleep(0.3)  # the watcher has read the head: only news wakes it now
        viewer = viewer_of(Principal(world.users["rep1"], Role.REP))
        async with db.write() as s:
            outs = await services.push.apply(s, viewer, [
                MutationIn(0, "contact", "CREATE", str(uuid.uuid4()), None,
                           {"accountId": str(world.accounts["rep1a"]), "firstName": "n",
                            "lastName": "announced"})])
            assert outs[0].status == "APPLIED"
        if not notifier.pg_dsn:
            notifier.committed()
        heard = await asyncio.wait_for(waiting, 5)
        async with db.read() as s:
            head = (await s.execute(sa.select(LogHead.last_seq))).scalar_one()
        assert heard == head == before + 1
    finally:
        await notifier.stop()
