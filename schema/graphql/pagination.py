"""Relay cursor connections with keyset cursors over (sort column, id)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from enum import Enum
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
import strawberry
from graphql import GraphQLError

from schema.context import Context
from sync.codec import codec_for

T = TypeVar("T")


@strawberry.enum
class SortDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _count: strawberry.Private[Any]
    _session: strawberry.Private[Any]

    @strawberry.field(description="Rows matching the filter (one extra COUNT statement).")
    async def total_count(self) -> int:
        return int((await self._session.execute(self._count)).scalar_one())


def _encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


def _decode(cursor: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        assert isinstance(values, list) and len(values) == 2
        return values
    except Exception:
        raise GraphQLError("invalid `after` cursor", extensions={"code": "BAD_CURSOR"}) from None


async def paginate(ctx: Context, stmt: sa.Select[Any], sort: sa.Column[Any], id_col: sa.Column[Any],
                   direction: SortDirection, first: int | None, after: str | None,
                   to_node: Callable[[Any], Any]) -> Connection[Any]:
    size = ctx.max_page if first is None else first
    if size < 0 or size > ctx.max_page:
        raise GraphQLError(f"`first` must be between 0 and {ctx.max_page}",
                           extensions={"code": "BAD_PAGE_SIZE"})
    count = sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())
    codec, id_codec = codec_for(sort), codec_for(id_col)
    desc = direction is SortDirection.DESC
    if after:
        raw_value, raw_id = _decode(after)
        try:
            value = None if raw_value is None else codec.parse(raw_value)
            last_id = id_codec.parse(raw_id)
        except ValueError:
            raise GraphQLError("invalid `after` cursor", extensions={"code": "BAD_CURSOR"}) from None
        op = sa.tuple_(sort, id_col) < (value, last_id) if desc else \
            sa.tuple_(sort, id_col) > (value, last_id)
        stmt = stmt.where(op)
    order = (sort.desc(), id_col.desc()) if desc else (sort.asc(), id_col.asc())
    rows = list((await ctx.session.execute(stmt.order_by(*order).limit(size + 1))).mappings())
    more = len(rows) > size
    rows = rows[:size]
    edges = [Edge(cursor=_encode([codec.dump(r[sort.name]) if r[sort.name] is not None else None,
                                  id_codec.dump(r[id_col.name])]), node=to_node(r))
             for r in rows]
    return Connection(edges=edges, page_info=PageInfo(has_next_page=more,
                      end_cursor=edges[-1].cursor if edges else None),
                      _count=count, _session=ctx.session)
