"""Sync health for managers: devices, who has not synced today, pending rejections."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.enums import OrderStatus, Role
from schema.identity.tables import User
from schema.orders.tables import Order
from schema.scope import Principal, team_ids
from sync.model import utcnow
from sync.tables import Client, Conflict, LogHead


def visible_users(principal: Principal) -> sa.Select[Any]:
    if principal.is_admin:
        return sa.select(col(User.id))
    return team_ids(principal)


@dataclass(frozen=True)
class DeviceRow:
    client: Client
    email: str
    lag: int


@dataclass(frozen=True)
class UserHealth:
    user_id: uuid.UUID
    email: str
    full_name: str
    devices: int
    last_sync_at: datetime | None
    synced_today: bool
    rejected_orders: int
    open_conflicts: int


async def devices(session: AsyncSession, principal: Principal) -> list[DeviceRow]:
    head = (await session.execute(sa.select(col(LogHead.last_seq)))).scalar_one()
    rows = await session.execute(
        sa.select(Client, col(User.email)).join(User, col(User.id) == col(Client.user_id))
        .where(col(Client.user_id).in_(visible_users(principal)))
        .order_by(col(User.email), col(Client.id)))
    return [DeviceRow(c, email, max(0, head - c.last_pull_seq)) for c, email in rows]


async def team_health(session: AsyncSession, principal: Principal) -> list[UserHealth]:
    start_of_day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    users = (await session.execute(
        sa.select(User).where(col(User.id).in_(visible_users(principal)),
                              col(User.active).is_(True), col(User.role) != Role.ADMIN)
        .order_by(col(User.email)))).scalars().all()
    ids = [u.id for u in users]
    synced = {r.user_id: r for r in await session.execute(
        sa.select(col(Client.user_id), sa.func.count().label("n"),
                  sa.func.max(col(Client.last_pull_at)).label("last"))
        .where(col(Client.user_id).in_(ids)).group_by(col(Client.user_id)))}
    rejected = dict((await session.execute(
        sa.select(col(Order.rep_id), sa.func.count()).where(
            col(Order.rep_id).in_(ids), col(Order.status) == OrderStatus.REJECTED,
            col(Order.deleted).is_(False)).group_by(col(Order.rep_id)))).all())
    conflicts = dict((await session.execute(
        sa.select(col(Conflict.user_id), sa.func.count()).where(
            col(Conflict.user_id).in_(ids), col(Conflict.resolved).is_(False))
        .group_by(col(Conflict.user_id)))).all())
    out = []
    for u in users:
        s = synced.get(u.id)
        last = s.last if s is not None else None
        if last is not None and last.tzinfo is None:  # SQLite aggregates lose the type
            last = datetime.fromisoformat(str(last)).replace(tzinfo=start_of_day.tzinfo)
        out.append(UserHealth(u.id, u.email, u.full_name, s.n if s else 0, last,
                              last is not None and last >= start_of_day,
                              int(rejected.get(u.id, 0)), int(conflicts.get(u.id, 0))))
    return out


