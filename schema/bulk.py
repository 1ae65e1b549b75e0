"""Trusted bulk inserts (demo seed, imports) through the one write path.

No policy or validation runs here — callers are server-side code with trusted data —
but every row still gets its version, its scope key and its change-log entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from schema.registry import registry
from sync.hlc import HybridClock
from sync.model import new_id
from sync.writer import ChangeSet, RowWrite, flush

_clock = HybridClock("import")


async def insert_rows(
    session: AsyncSession, entity: str, rows: Iterable[Mapping[str, Any]],
    actor_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Insert rows of `entity` (column names; an order's lines under `_children`)."""
    spec = registry[entity]
    changes = ChangeSet(actor_id=actor_id)
    ids: list[uuid.UUID] = []
    hlc = _clock.now()
    for raw in rows:
        values = dict(raw)
        children = values.pop("_children", None)
        row_id = values.pop("id", None) or new_id()
        full = spec.with_defaults(values)
        scope = spec.scope_of({**full, "id": row_id})
        changes.add(RowWrite(spec, row_id, "insert", full, None, 1, scope, None, hlc, children))
        if spec.holder_of is not None:
            changes.add_key(row_id, spec.holder_of(full), spec.root_kind)
        ids.append(row_id)
    await flush(session, changes)
    return ids
