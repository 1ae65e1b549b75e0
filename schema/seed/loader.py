"""`seed --demo`: write the generated demo data through the one write path.

Users go through `create_user` (which also creates their scope key); every synced row
goes through `schema.bulk.insert_rows`, so it is versioned, scoped and in the change log
exactly like a row written by the app. Accounts are generated and written a chunk at a
time, one unit of work per chunk, so memory stays bounded at any size.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from schema.bulk import insert_rows
from schema.identity.passwords import hash_password
from schema.identity.service import create_user, user_by_email
from schema.leads.tables import LeadStatusChange
from schema.seed.generator import ADMIN_EMAIL, DEMO_PASSWORD, SIZES, DemoGenerator
from schema.seed.plan import CHUNK_ORDER, Bundle

#: Rows per `insert_rows` call, and rows (order lines included) per unit of work.
BATCH_ROWS = 2_000
CHUNK_ROWS = 20_000


class UnitsOfWork(Protocol):
    """What the loader needs of `server.db.Database` (schema/ does not import server/)."""

    def read(self) -> AbstractAsyncContextManager[AsyncSession]: ...

    def write(self) -> AbstractAsyncContextManager[AsyncSession]: ...


class SeedError(Exception):
    """The demo seed cannot run (already seeded, unknown size)."""


@dataclass(frozen=True)
class DemoLogin:
    email: str
    role: str
    password: str = DEMO_PASSWORD


@dataclass
class SeedSummary:
    size: str
    seed: int
    today: date
    #: Rows written per entity (sync names), plus `user`, `orderLine` and `leadStatusChange`.
    counts: dict[str, int] = field(default_factory=dict)
    logins: list[DemoLogin] = field(default_factory=list)
    patterns_path: Path | None = None
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())


async def seed_demo(db: UnitsOfWork, size: str = "small", seed: int = 42,
                    patterns_path: Path | None = None, today: date | None = None,
                    progress: bool = True) -> SeedSummary:
    """Load the demo data set; refuses to run on a database that was already seeded."""
    if size not in SIZES:
        raise SeedError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    started = time.perf_counter()
    async with db.read() as session:
        if await user_by_email(session, ADMIN_EMAIL) is not None:
            raise SeedError("database already seeded")
    gen = DemoGenerator(size, seed, today)
    summary = SeedSummary(size, seed, gen.today, patterns_path=patterns_path)
    counts: Counter[str] = Counter()
    bar = tqdm(total=len(gen.accounts) + len(gen.reps), desc=f"seed {size}", unit="acct",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)
    try:
        # argon2 is slow on purpose: hash the shared demo password once, off the loop.
        password_hash = await asyncio.to_thread(hash_password, DEMO_PASSWORD)
        async with db.write() as session:
            await _write_org(session, gen, password_hash, counts)
        bar.set_postfix(rows=sum(counts.values()))
        for chunk in _chunks(gen.account_bundles()):
            await _write_chunk(db, chunk, gen.admin.id, counts)
            bar.update(len(chunk))
            bar.set_postfix(rows=sum(counts.values()))
        bar.set_description(f"seed {size} (leads)")
        for chunk in _chunks(gen.lead_bundles()):
            await _write_chunk(db, chunk, gen.admin.id, counts)
            bar.update(len(chunk))
        bar.set_postfix(rows=sum(counts.values()))
    finally:
        bar.close()
    async with db.write() as session:
        if session.get_bind().dialect.name == "postgresql":
            # Planner statistics for the freshly loaded tables now, not when autovacuum
            # gets round to them: without them a first sync's page query sorted every
            # row of the rep's scope (40 ms a page instead of 4 in the sync benchmark).
            await session.execute(sa.text("ANALYZE"))
    if patterns_path is not None:
        text = json.dumps(gen.patterns(), indent=2, ensure_ascii=False, default=str)
        await asyncio.to_thread(patterns_path.write_text, text + "\n", encoding="utf-8")
    summary.counts = dict(counts)
    summary.logins = [DemoLogin(u.email, u.role.value) for u in gen.users]
    summary.seconds = time.perf_counter() - started
    return summary


async def _write_org(session: AsyncSession, gen: DemoGenerator, password_hash: str,
                     counts: Counter[str]) -> None:
    """Territories, users (admin first, managers before their reps) and the catalogue."""
    await _insert(session, "territory", gen.territories, gen.admin.id, counts)
    for u in gen.users:
        await create_user(session, email=u.email, full_name=u.full_name, password="",
                          role=u.role, manager_id=u.manager_id, territory_id=u.territory_id,
                          user_id=u.id, password_hash=password_hash)
    counts["user"] += len(gen.users)
    await _insert(session, "product", gen.products, gen.admin.id, counts)
    await _insert(session, "priceEntry", gen.price_entries, gen.admin.id, counts)


def _chunks(bundles: Iterable[Bundle]) -> Iterator[list[Bundle]]:
    chunk: list[Bundle] = []
    rows = 0
    for bundle in bundles:
        chunk.append(bundle)
        rows += len(bundle) + sum(len(o["_children"]) for o in bundle.rows.get("order", ()))
        if rows >= CHUNK_ROWS:
            yield chunk
            chunk, rows = [], 0
    if chunk:
        yield chunk


async def _write_chunk(db: UnitsOfWork, chunk: Sequence[Bundle], actor_id: uuid.UUID,
                       counts: Counter[str]) -> None:
    async with db.write() as session:
        for entity in CHUNK_ORDER:
            rows = [row for bundle in chunk for row in bundle.rows.get(entity, ())]
            if entity == "order":
                counts["orderLine"] += sum(len(o["_children"]) for o in rows)
            await _insert(session, entity, rows, actor_id, counts)
        history = [h for bundle in chunk for h in bundle.lead_history]
        if history:
            # Lead stage history is not synced: plain inserts, no change log.
            await session.execute(sa.insert(LeadStatusChange), history)
            counts["leadStatusChange"] += len(history)


async def _insert(session: AsyncSession, entity: str, rows: Sequence[dict[str, Any]],
                  actor_id: uuid.UUID | None, counts: Counter[str]) -> None:
    it = iter(rows)
    while batch := list(islice(it, BATCH_ROWS)):
        await insert_rows(session, entity, batch, actor_id)
        counts[entity] += len(batch)
