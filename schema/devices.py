"""Sync health for managers: devices, who has not synced today, pending rejections."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from schema.enums import OrderStatus, Role
from schema.identity.tables import User
from schema.orders.tables import Order
from schema.scope import Principal, team_ids
from sync.model import utcnow
from sync.tables import Client, Conflict, LogHead


def visible_users(principal: Principal) -> sa.Select[Any]:
    if principal.is_admin:
        return sa.select(User.id)
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
    head = (await session.execute(sa.select(LogHead.last_seq))).scalar_one()
    rows = await session.execute(
        sa.select(Client, User.email).join(User, User.id == Client.user_id)
        .where(Client.user_id.in_(visible_users(principal)))
        .order_by(User.email, Client.id))
    return [DeviceRow(c, email, max(0, head - c.last_pull_seq)) for c, email in rows]


async def team_health(session: AsyncSession, principal: Principal) -> list[UserHealth]:
    start_of_day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    users = (await session.execute(
        sa.select(User).where(User.id.in_(visible_users(principal)), User.active.is_(True),
                              User.role != Role.ADMIN).order_by(User.email))).scalars().all()
    ids = [u.id for u in users]
    synced = {r.user_id: r for r in await session.execute(
        sa.select(Client.user_id, sa.func.count().label("n"),
                  sa.func.max(Client.last_pull_at).label("last"))
        .where(Client.user_id.in_(ids)).group_by(Client.user_id))}
    rejected = dict((await session.execute(
        sa.select(Order.rep_id, sa.func.count()).where(
            Order.rep_id.in_(ids), Order.status == OrderStatus.REJECTED,
            Order.deleted.is_(False)).group_by(Order.rep_id))).all())
    conflicts = dict((await session.execute(
        sa.select(Conflict.user_id, sa.func.count()).where(
            Conflict.user_id.in_(ids), Conflict.resolved.is_(False)).group_by(Conflict.user_id))).all())
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


