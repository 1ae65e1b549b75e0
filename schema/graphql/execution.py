"""graphql-core's executor with a fast path for plain leaf fields.

A sync page is a list of up to 1,000 `SyncChange` objects and a push answer a list of
up to 500 `SyncMutationResult`s. graphql-core resolves each of their fields through the
generic machinery (resolve info, middleware, argument coercion, a `Path`, value
completion): about three quarters of a pull page's CPU went there, for fields that are
an attribute read and a scalar's `coerce_output_value`.

Here a selection set whose fields all have strawberry's default resolver, no arguments
and a scalar or enum type is completed directly, with the same resolver and the same
leaf coercion. Anything unusual (a null in a non-null field, a value the scalar refuses,
a nested object that is not null, field middleware) takes graphql-core's own path
again for that object, so errors and their paths are exactly graphql-core's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

#: (response key, resolver, leaf type or None for a nullable non-leaf, nullable)
_Step = tuple[str, Callable[..., Any], GraphQLLeafType | None, bool]
_TYPENAME = "__typename"


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keyed by the identity of a grouped field set, which is kept alive with its
        # plan so that its id cannot be reused by another one during this execution.
        self._plans: dict[int, tuple[Any, list[_Step] | None]] = {}

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any,
                       path: Path | None, grouped_field_set: Any,
                       position_context: Any) -> Any:
        known = self._plans.get(id(grouped_field_set))
        if known is not None and known[0] is grouped_field_set:
            plan = known[1]
        else:
            plan = self._plan(parent_type, grouped_field_set)
            self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        if plan is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                          position_context)
        out: dict[str, Any] = {}
        complete, is_awaitable = self.complete_leaf_value, self.is_awaitable
        try:
            for name, resolve, leaf, nullable in plan:
                if resolve is _typename:
                    out[name] = parent_type.name
                    continue
                value = resolve(source_value, None)
                if value is None:
                    if not nullable:
                        raise _Slow
                    out[name] = None
                elif leaf is None or is_awaitable(value):
                    raise _Slow  # a nested object or an awaitable: graphql-core's job
                else:
                    out[name] = complete(leaf, value)
        except Exception:
            # Let graphql-core redo the object: it reports the error at the right path.
            return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                          position_context)
        return out

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[_Step] | None:
        if self.middleware_manager is not None and self.middleware_manager.middlewares:
            return None
        plan: list[_Step] = []
        for name, details in grouped_field_set.items():
            node = details[0].node
            field_name = node.name.value
            if field_name == _TYPENAME:
                plan.append((name, _typename, None, False))
                continue
            field_def = self.schema.get_field(parent_type, field_name)
            if field_def is None or field_def.args or node.arguments:
                return None
            resolve = field_def.resolve
            if resolve is None or not getattr(resolve, "_is_default", False):
                return None
            t = field_def.type
            nullable = not isinstance(t, GraphQLNonNull)
            inner = t.of_type if isinstance(t, GraphQLNonNull) else t
            if isinstance(inner, (GraphQLScalarType, GraphQLEnumType)):
                plan.append((name, resolve, inner, nullable))
            elif nullable:
                plan.append((name, resolve, None, True))  # fast only while it is null
            else:
                return None
        return plan


class _Slow(Exception):
    """This object needs graphql-core's full completion."""


def _typename(*_: Any) -> None:  # pragma: no cover - a marker, never called
    return None
