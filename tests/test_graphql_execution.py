"""The executor's fast path for leaf fields answers exactly as graphql-core does."""

from __future__ import annotations

import asyncio
import enum
from typing import Any, NewType

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import Info

from schema.graphql.execution import FastLeafExecutionContext
from schema.graphql.root import build_schema
from schema.limits import GraphQLLimits, extensions


@strawberry.enum
class Op(enum.Enum):
    UPSERT = "upsert"
    DELETE = "delete"


def _even(v: int) -> int:
    if v % 2:
        raise ValueError(f"{v} is odd")
    return v


Even = NewType("Even", int)
EVEN = {Even: strawberry.scalar(name="Even", serialize=_even, parse_value=int)}


@strawberry.type
class Err:
    code: str
    message: str | None


@strawberry.type
class Item:
    id: strawberry.ID
    op: Op
    version: int
    note: str | None
    required: str
    even: Even
    error: Err | None

    @strawberry.field
    def shout(self, suffix: str = "!") -> str:
        return self.required.upper() + suffix


@strawberry.type
class Later:
    """A plain field whose value is awaitable: graphql-core awaits it."""

    value: JSON


async def _seven() -> int:
    return 7


def _items() -> list[Item]:
    return [
        Item(id=strawberry.ID("a"), op=Op.UPSERT, version=1, note=None, required="x", even=2,
             error=None),
        Item(id=strawberry.ID("b"), op=Op.DELETE, version=2, note="n", required="y", even=4,
             error=Err(code="E", message=None)),
    ]


def _broken() -> list[Item]:
    items = _items()
    items[1].required = None  # type: ignore[assignment]  # a null in a non-null field
    items[0].even = 3  # a value the scalar refuses
    return items


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return _items()

    @strawberry.field
    def broken(self) -> list[Item | None]:
        return list(_broken())

    @strawberry.field
    def strict(self, info: Info) -> list[Item]:
        return _broken()

    @strawberry.field
    def odd(self) -> list[Item]:
        return [*_items(), None, ValueError("boom"), _boom()]  # type: ignore[list-item]

    @strawberry.field
    def later(self) -> Later:
        return Later(value=_seven())


async def _boom() -> Item:
    raise ValueError("boom")


QUERIES = [
    "{ items { id op version note required even } }",
    "{ odd { __typename } }",  # items no field reads: a null, an error, an awaitable
    "{ odd { id @skip(if: true) } }",
    "{ items { __typename a: id b: id version error { code message } } }",
    "{ items { ...F note } } fragment F on Item { id op }",
    "query($s: Boolean!) { items { id note @skip(if: $s) version @include(if: $s) } }",
    "{ items { id shout shout2: shout(suffix: \"?\") } }",
    "{ broken { id required } }",
    "{ broken { id even } }",
    "{ strict { id required } }",
    "{ items { id error { code } } broken { version } }",
    "{ later { value } }",
]


def _run(ctx: type, query: str) -> dict[str, Any]:
    schema = strawberry.Schema(query=Query, execution_context_class=ctx,
                               config=StrawberryConfig(scalar_map=EVEN))
    result = asyncio.run(schema.execute(query, variable_values={"s": True}))
    return {"data": result.data,
            "errors": sorted((e.message, tuple(e.path or ())) for e in result.errors or ())}


@pytest.mark.parametrize("query", QUERIES)
def test_fast_path_answers_like_graphql_core(query: str) -> None:
    assert _run(FastLeafExecutionContext, query) == _run(StrawberryGraphQLCoreExecutionContext,
                                                         query)


def test_broken_values_still_report_errors_at_their_path() -> None:
    out = _run(FastLeafExecutionContext, "{ broken { id required even } }")
    paths = {path for _msg, path in out["errors"]}
    assert ("broken", 1, "required") in paths
    assert ("broken", 0, "even") in paths
    assert out["data"] == {"broken": [None, None]}


def test_the_app_schema_uses_the_fast_path() -> None:
    schema = build_schema()
    assert issubclass(schema.execution_context_class, FastLeafExecutionContext)
    # An extension with a `resolve` hook becomes field middleware, which turns the fast
    # path off for every field: none of the app's extensions may have one.
    for production in (False, True):
        for make in extensions(GraphQLLimits(production=production)):
            ext = make()
            assert type(ext).resolve is SchemaExtension.resolve, type(ext).__name__


class _Counting(FastLeafExecutionContext):
    objects = 0

    def complete_object_value(self, *args: Any) -> Any:
        type(self).objects += 1
        return super().complete_object_value(*args)


def test_a_list_of_plain_objects_is_completed_without_graphql_cores_per_item_work() -> None:
    _Counting.objects = 0
    assert _run(_Counting, "{ items { id op version note } }") == _run(
        StrawberryGraphQLCoreExecutionContext, "{ items { id op version note } }")
    assert _Counting.objects == 0
    # A list the loop cannot complete goes back to graphql-core, item by item.
    _Counting.objects = 0
    _run(_Counting, "{ strict { id required } }")
    assert _Counting.objects == 2
