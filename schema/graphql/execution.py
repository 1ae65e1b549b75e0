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

A list of such objects is completed in one loop too: graphql-core's per-item machinery
(a `Path`, value completion, sub-field collection) was a third of what completing a
pull page still cost. Any item the loop cannot complete sends the whole list back to
graphql-core, which completes it again and reports errors at their paths.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sized
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

#: (response key, resolver, leaf type or None for a nullable non-leaf, nullable)
_Step = tuple[str, Callable[..., Any], GraphQLLeafType | None, bool]
_TYPENAME = "__typename"


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    #: Objects one execution may complete in lists: the static estimate (schema/limits.py)
    #: cannot see how long an unpaged list such as an account's contacts really is, and
    #: back-links (`contact { account { contacts … } }`) multiply them. Set per schema.
    max_objects = 50_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._objects = 0
        # Keyed by the identity of a grouped field set, which is kept alive with its
        # plan so that its id cannot be reused by another one during this execution.
        self._plans: dict[int, tuple[Any, list[_Step] | None]] = {}
        #: Per enum type, (value's type, value) → the name it completes to.
        self._enum_names: dict[GraphQLEnumType, dict[tuple[type, Any], Any]] = {}

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any,
                       path: Path | None, grouped_field_set: Any,
                       position_context: Any) -> Any:
        plan = self._plan_of(parent_type, grouped_field_set)
        out = None if plan is None else self._complete(plan, parent_type, source_value)
        if out is not None:
            return out
        # graphql-core (re)does the object and reports any error at its path.
        return super().execute_fields(parent_type, source_value, path, grouped_field_set,
                                      position_context)

    def complete_iterable_value(self, item_type: Any, field_details_list: Any, info: Any,
                                path: Path, items: Any, position_context: Any) -> Any:
        if isinstance(items, Sized):
            self._objects += len(items)
            if self._objects > self.max_objects:
                raise GraphQLError(
                    f"this query returns more than {self.max_objects:,} objects; ask for "
                    "smaller pages or fewer levels", extensions={"code": "QUERY_TOO_COMPLEX"})
        plan = self._list_plan(item_type, field_details_list, path, items)
        if plan is not None:
            complete, parent_type, is_awaitable = (self._complete, item_type.of_type,
                                                   self.is_awaitable)
            out = []
            for item in items:
                # What graphql-core completes specially (a null in a non-null list, an
                # error, an awaitable) is its job, even when no field would read the item.
                if item is None or item is Undefined or isinstance(item, Exception) \
                        or is_awaitable(item):
                    break
                done = complete(plan, parent_type, item)
                if done is None:
                    break
                out.append(done)
            else:
                return out
        # graphql-core completes the whole list (again), reporting errors at their paths.
        return super().complete_iterable_value(item_type, field_details_list, info, path,
                                               items, position_context)

    def _complete(self, plan: list[_Step], parent_type: GraphQLObjectType,
                  source_value: Any) -> dict[str, Any] | None:
        """The object's fields, or None when it needs graphql-core's completion (a null
        in a non-null field, a nested object, an awaitable, any error)."""
        out: dict[str, Any] = {}
        complete, is_awaitable = self.complete_leaf_value, self.is_awaitable
        try:
            for name, resolve, leaf, nullable in plan:
                if resolve is _typename:
                    out[name] = parent_type.name
                    continue
                value = resolve(source_value)
                if value is None:
                    if not nullable:
                        return None
                    out[name] = None
                elif leaf is None or is_awaitable(value):
                    return None
                elif isinstance(leaf, GraphQLEnumType):
                    # An enum has a few names: remember each value's (same coercion).
                    names = self._enum_names.setdefault(leaf, {})
                    key = (type(value), value)
                    named = names.get(key)
                    if named is None:
                        named = names[key] = complete(leaf, value)
                    out[name] = named
                else:
                    out[name] = complete(leaf, value)
        except Exception:
            return None
        return out

    def _list_plan(self, item_type: Any, field_details_list: Any, path: Path,
                   items: Any) -> list[_Step] | None:
        """The plan for a list's items when it is a plain list of non-null objects
        without @stream or @defer, else None."""
        if not (isinstance(items, list) and isinstance(item_type, GraphQLNonNull)
                and isinstance(item_type.of_type, GraphQLObjectType)):
            return None
        object_type = item_type.of_type
        if object_type.is_type_of is not None:
            return None
        if self.get_stream_usage(field_details_list, path) is not None:
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(object_type,
                                                                        field_details_list)
        if new_defer_usages:
            return None
        return self._plan_of(object_type, grouped_field_set)

    def _plan_of(self, parent_type: GraphQLObjectType, grouped_field_set: Any
                 ) -> list[_Step] | None:
        known = self._plans.get(id(grouped_field_set))
        if known is not None and known[0] is grouped_field_set:
            return known[1]
        plan = self._plan(parent_type, grouped_field_set)
        self._plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

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
            resolve = _reader(field_def)
            if resolve is None:
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


def _reader(field_def: Any) -> Callable[[Any], Any] | None:
    """How to read a field of strawberry's default resolver from its source: the
    attribute itself for a basic field (what strawberry's default resolver, `getattr`,
    does), else None."""
    resolve = field_def.resolve
    if resolve is None or not getattr(resolve, "_is_default", False):
        return None
    field = field_def.extensions.get("strawberry-definition")
    if field is None or not field.is_basic_field or field.default_resolver is not getattr:
        return None
    return operator.attrgetter(field.python_name)


def _typename(*_: Any) -> None:  # pragma: no cover - a marker, never called
    return None
