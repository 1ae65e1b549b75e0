"""GraphQL plumbing the analytics types share: periods and argument checks, loaders for
the entities a figure names, which fields were asked for, the per-request statement
lock, and the managers-only permission."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from schema.accounts.tables import Account as AccountRow
from schema.analytics.common import Period, Scope, as_uuid
from schema.catalog.tables import Product as ProductRow
from schema.graphql import types as T
from schema.graphql.loaders import load_one
from schema.graphql.typegen import build
from schema.identity.tables import Territory as TerritoryRow
from schema.identity.tables import User as UserRow
from sync.model import utcnow

R = TypeVar("R")
MAX_LIMIT = 500


@strawberry.input(description="Days from `start` to `end`, both included.")
class PeriodInput:
    start: date
    end: date


@strawberry.type(description="Days from `start` to `end`, both included.")
class DateRange:
    start: date
    end: date

    @strawberry.field
    def days(self) -> int:
        return (self.end - self.start).days + 1


def date_range(period: Period) -> DateRange:
    return DateRange(start=period.start, end=period.end)


def today() -> date:
    """Today in UTC, the server's calendar (dates passed as `asOf` win)."""
    return utcnow().date()


def period_of(value: PeriodInput | None, default_days: int = 365,
              end: date | None = None) -> Period:
    """The requested period, or the `default_days` days up to today."""
    if value is None:
        return Period.trailing(end or today(), default_days)
    if value.end < value.start:
        raise GraphQLError("period: `end` is before `start`", extensions={"code": "BAD_PERIOD"})
    if (value.end - value.start).days > 3 * 366:
        raise GraphQLError("period: at most three years", extensions={"code": "BAD_PERIOD"})
    return Period(value.start, value.end)


def limit_of(value: int, name: str = "limit", maximum: int = MAX_LIMIT) -> int:
    if value < 0 or value > maximum:
        raise GraphQLError(f"`{name}` must be between 0 and {maximum}",
                           extensions={"code": "BAD_LIMIT"})
    return value


def gid(value: uuid.UUID | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


def uid(value: strawberry.ID | str | None) -> uuid.UUID | None:
    """A UUID from an argument; a malformed one becomes an id that matches nothing."""
    if value is None:
        return None
    return as_uuid(value) or uuid.UUID(int=0)


def required_uid(value: strawberry.ID | str) -> uuid.UUID:
    return as_uuid(value) or uuid.UUID(int=0)


def months_of(value: int) -> int:
    if not 1 <= value <= 36:
        raise GraphQLError("`months` must be between 1 and 36", extensions={"code": "BAD_LIMIT"})
    return value


def selected(info: Info) -> set[str]:
    """Dotted paths of the fields asked for under this one ("rows", "rows.previous"…),
    fragments included, so a resolver can skip work nobody asked for."""
    found: set[str] = set()

    def walk(selections: list[Any], prefix: str) -> None:
        for sel in selections:
            if isinstance(sel, SelectedField):
                path = f"{prefix}{sel.name}"
                found.add(path)
                walk(sel.selections, path + ".")
            elif isinstance(sel, (FragmentSpread, InlineFragment)):
                walk(sel.selections, prefix)

    for field in info.selected_fields:
        walk(field.selections, "")
    return found


async def account(info: Info, account_id: uuid.UUID | None) -> T.Account | None:
    row = await load_one(info.context, AccountRow, account_id)
    return None if row is None else build(T.Account, row)


async def product(info: Info, product_id: uuid.UUID | None) -> T.Product | None:
    # Archived products stay visible where a sale names them (as on order lines).
    row = await load_one(info.context, ProductRow, product_id, scoped=False)
    return None if row is None else build(T.Product, row)


async def territory(info: Info, territory_id: uuid.UUID | None) -> T.Territory | None:
    row = await load_one(info.context, TerritoryRow, territory_id)
    return None if row is None else build(T.Territory, row)


async def user(info: Info, user_id: uuid.UUID | None) -> T.UserSummary | None:
    return T.user_summary(await load_one(info.context, UserRow, user_id, scoped=False))


async def serialized(info: Info, work: Callable[[], Awaitable[R]]) -> R:
    """Run `work` alone on the request's session: sibling fields resolve concurrently, and
    an AsyncSession runs one statement at a time.

    (JIT compilation, which cost these statements 100-400 ms on PostgreSQL, is off on
    every server connection: server/db.py. A `SET LOCAL` here would only warn now that
    reads run in autocommit.)
    """
    lock: asyncio.Lock = info.context.loader(("analytics", "session-lock"), asyncio.Lock)
    async with lock:
        return await work()


async def scoped(info: Info, work: Callable[[Scope], Awaitable[R]]) -> R:
    """`serialized`, handing `work` the caller's scope with its keys listed (read once
    per request)."""
    ctx = info.context
    cell: list[Scope] = ctx.loader(("analytics", "scope"), list)

    async def run() -> R:
        if not cell:
            cell.append(await Scope.of(ctx.session, ctx.me))
        return await work(cell[0])

    return await serialized(info, run)


class ManagersOnly(BasePermission):
    message = "managers and admins only"
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return bool(info.context.me.privileged)
