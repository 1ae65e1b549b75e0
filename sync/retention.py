"""Change-log retention: how long tombstones and history are kept, and what then.

The horizon is the oldest sequence number still served incrementally. It only moves
past changes that are older than the retention window *and* that every device seen in
that window has already pulled; a device with a cursor below the horizon gets
`reset: true` (a fresh snapshot, its outbox untouched) — never a silent gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from sync.tables import Change, Client, LogHead, MutationResult


@dataclass(frozen=True)
class Compaction:
    horizon: int
    changes_deleted: int
    results_deleted: int


async def compact(session: AsyncSession, retention: timedelta, now: datetime) -> Compaction:
    cutoff = now - retention
    head, horizon = (await session.execute(
        sa.select(col(LogHead.last_seq), col(LogHead.horizon_seq)).where(col(LogHead.id) == 1)
        )).one()  # no lock: writers keep going while old history is deleted
    old_enough = (await session.execute(
        sa.select(sa.func.max(col(Change.seq))).where(col(Change.at) < cutoff))).scalar_one() or 0
    slowest_active = (await session.execute(
        sa.select(sa.func.min(col(Client.last_pull_seq))).where(col(Client.last_pull_at) >= cutoff)
    )).scalar_one()
    target = old_enough if slowest_active is None else min(old_enough, slowest_active)
    target = max(horizon, min(target, head))
    deleted = 0
    if target > horizon:
        deleted = _rowcount(await session.execute(
            sa.delete(Change).where(col(Change.seq) <= target)))
        await session.execute(
            sa.update(LogHead).where(col(LogHead.id) == 1).values(horizon_seq=target))
    results = _rowcount(await session.execute(
        sa.delete(MutationResult).where(col(MutationResult.at) < cutoff)))
    return Compaction(target, int(deleted or 0), int(results or 0))


def _rowcount(result: Result[Any]) -> int:
    """Rows a DELETE or UPDATE matched (`execute()` is typed as returning a plain Result)."""
    return cast(CursorResult[Any], result).rowcount
