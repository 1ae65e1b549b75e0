"""GraphQL resource limits and error masking. Strawberry's protections are opt-in; this
module turns each on deliberately, with limits from settings.

- depth, aliases (fragments included — strawberry counts through them), tokens;
- the objects a query can ask for, nested page sizes multiplied (`fan_out_rule`);
- duplicated fields in one selection set (`{ me { email email email … } }`), which
  graphql-core otherwise merges at quadratic validation cost;
- introspection for anonymous callers in production mode;
- unexpected exceptions: a generic message with a correlation id, logged with the trace.
Circular fragments are refused by graphql-core's standard validation (NoFragmentCycles).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from graphql import (
    ASTValidationRule,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    get_named_type,
)
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

log = logging.getLogger("fieldsync.graphql")


@dataclass(frozen=True)
class GraphQLLimits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_duplicate_fields: int = 3
    #: Objects a query may ask for, as `fan_out_rule` estimates them.
    max_objects: int = 50_000
    #: A page size the document leaves to a variable counts as this (the largest).
    max_page: int = 200
    production: bool = False


def duplicate_field_rule(limit: int) -> type[ValidationRule]:
    class NoDuplicatedFields(ValidationRule):
        def enter_selection_set(self, node: SelectionSetNode, *_args: Any) -> None:
            counts = Counter(
                (s.alias.value if s.alias else s.name.value)
                for s in node.selections if isinstance(s, FieldNode))
            for name, n in counts.items():
                if n > limit:
                    self.report_error(GraphQLError(
                        f"field '{name}' is selected {n} times in one selection set "
                        f"(at most {limit})", node, extensions={"code": "QUERY_TOO_COMPLEX"}))

    return NoDuplicatedFields


def fan_out_rule(max_objects: int, max_page: int) -> type[ValidationRule]:
    """Refuse a query that can ask for more than `max_objects` objects.

    Depth and alias limits leave the product of page sizes unbounded: `account {
    orders(first: 50) { account { orders(first: 50) … } } }` multiplies to millions of
    objects from a few hundred bytes. The estimate walks the document (fragments
    included) and multiplies what lies under each field with a `first` argument by its
    page size: the literal (at most `max_page`), or `max_page` for a variable, or the
    field's default. Lists without one (a connection's edges, an order's lines) count
    once here; the executor counts what they really hold while the query runs
    (`FastLeafExecutionContext.max_objects`). The walk stops as soon as the estimate
    passes the limit, so its cost is bounded too.
    """

    class BoundedFanOut(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
            root = self.context.schema.get_root_type(node.operation)
            if root is None:
                return
            total = self._count(node.selection_set, root, 1, frozenset(), 0)
            if total > max_objects:
                self.report_error(GraphQLError(
                    f"this query can ask for more than {max_objects:,} objects (nested "
                    "pages multiply: 50 accounts x 50 orders is 2,500); ask for smaller "
                    "pages or fewer levels", node, extensions={"code": "QUERY_TOO_COMPLEX"}))

        def _count(self, selections: SelectionSetNode, parent: GraphQLNamedType,
                   scale: int, fragments: frozenset[str], total: int) -> int:
            for s in selections.selections:
                if total > max_objects:
                    break
                if isinstance(s, FieldNode):
                    fields = getattr(parent, "fields", None)
                    field = fields.get(s.name.value) if fields else None
                    if s.selection_set is None or field is None:
                        continue
                    n = scale * _page(s, field, max_page)
                    total = self._count(s.selection_set, get_named_type(field.type), n,
                                        fragments, total + n)
                elif isinstance(s, InlineFragmentNode):
                    kind = (self.context.schema.get_type(s.type_condition.name.value)
                            if s.type_condition else parent)
                    if kind is not None:
                        total = self._count(s.selection_set, kind, scale, fragments, total)
                elif isinstance(s, FragmentSpreadNode) and s.name.value not in fragments:
                    fragment = self.context.get_fragment(s.name.value)
                    if fragment is None:
                        continue
                    kind = self.context.schema.get_type(fragment.type_condition.name.value)
                    if kind is not None:
                        total = self._count(fragment.selection_set, kind, scale,
                                            fragments | {s.name.value}, total)
            return total

    return BoundedFanOut


def _page(node: FieldNode, field: GraphQLField, max_page: int) -> int:
    """How many objects a field returns at most, per parent (1 without `first`)."""
    if "first" not in field.args:
        return 1
    for arg in node.arguments or ():
        if arg.name.value == "first":
            # Above `max_page` the resolver refuses it (BAD_PAGE_SIZE), which says more.
            return max(1, min(int(arg.value.value), max_page)) \
                if isinstance(arg.value, IntValueNode) else max_page
    default = field.args["first"].default_value
    return max(1, default) if isinstance(default, int) else max_page


class AnonymousIntrospection(SchemaExtension):
    """In production, schema introspection needs a signed-in user."""

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        context = ctx.context
        doc = ctx.graphql_document
        if doc is not None and getattr(context, "principal", None) is None and _introspects(doc):
            raise GraphQLError("introspection requires signing in",
                               extensions={"code": "UNAUTHENTICATED"})
        yield


def _introspects(document: Any) -> bool:
    stack = list(getattr(document, "definitions", []))
    while stack:
        node = stack.pop()
        if isinstance(node, FieldNode) and node.name.value in ("__schema", "__type"):
            return True
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)
    return False


class CorrelatedMaskErrors(MaskErrors):
    """Unexpected errors become `internal error (ref …)`; the ref is in the server log."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if is_unavailable(error.original_error):
            log.warning("database busy or unavailable at %s: %s", error.path, error.original_error)
            return GraphQLError("the database is busy or unavailable; retry shortly",
                                nodes=error.nodes, source=error.source, positions=error.positions,
                                path=error.path,
                                extensions={"code": "UNAVAILABLE", "retryable": True})
        ref = uuid.uuid4().hex[:12]
        log.error("unexpected error (ref %s) at %s", ref, error.path, exc_info=error.original_error)
        return GraphQLError(f"internal error (ref {ref})", nodes=error.nodes, source=error.source,
                            positions=error.positions, path=error.path,
                            extensions={"code": "INTERNAL", "ref": ref, "retryable": True})


def is_unavailable(exc: BaseException | None) -> bool:
    """A pool timeout (every connection busy) or a lost database: worth a retry."""
    if isinstance(exc, sa.exc.TimeoutError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, (sa.exc.OperationalError, sa.exc.InterfaceError))
    return False


#: graphql-core's wording when a scalar refuses an argument or a variable.
_INPUT_REFUSED = ("Expected value of type ", "Variable '$")


def _should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return False
    # A scalar parser refusing the client's input (Cents out of range, a malformed date)
    # while the document is validated or the variables coerced: no resolver ran, and the
    # message says what to fix. Anything else that raised is a bug and stays masked.
    return not (error.path is None and isinstance(original, (ValueError, TypeError))
                and error.message.startswith(_INPUT_REFUSED))


def extensions(limits: GraphQLLimits) -> list[Callable[[], SchemaExtension]]:
    # The rule classes are built once: the validation cache keys on them, and the
    # limiter extensions would mint new classes per request (every lookup a miss).
    rules: list[type[ASTValidationRule]] = [
        depth_rule(limits.max_depth, None), alias_rule(limits.max_aliases),
        duplicate_field_rule(limits.max_duplicate_fields),
        fan_out_rule(limits.max_objects, limits.max_page)]
    out: list[Callable[[], SchemaExtension]] = [
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: CorrelatedMaskErrors(should_mask_error=_should_mask),
        # The same few operations arrive again and again (sync pulls above all).
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]
    if limits.production:
        out.append(AnonymousIntrospection)
    return out


