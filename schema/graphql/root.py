"""The schema: root types composed from per-domain classes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from schema.analytics.graphql import AnalyticsQuery
from schema.dialects.rxdb import RxMutation, RxQuery, RxSubscription
from schema.dialects.watermelon import WatermelonMutation, WatermelonQuery
from schema.graphql import types as T
from schema.graphql.auth import AuthMutation
from schema.graphql.execution import FastLeafExecutionContext
from schema.graphql.mutations import EntityMutation, LeadMutation
from schema.graphql.queries import Query as EntityQuery
from schema.graphql.scalars import SCALARS
from schema.graphql.sync_api import SyncMutation, SyncQuery, SyncSubscription

Query = merge_types("Query", (EntityQuery, AnalyticsQuery, SyncQuery, RxQuery,
                               WatermelonQuery))
Mutation = merge_types("Mutation", (AuthMutation, EntityMutation, LeadMutation, SyncMutation,
                                    RxMutation,
                                    WatermelonMutation))
Subscription = merge_types("Subscription", (SyncSubscription, RxSubscription))

NODE_CLASSES = [cls for cls, _model in T.NODE_TYPES.values()]


def build_schema(
    extensions: Sequence[type[SchemaExtension] | Callable[[], SchemaExtension]] | None = None,
    max_objects: int = FastLeafExecutionContext.max_objects,
) -> strawberry.Schema:
    execution = type("FieldsyncExecutionContext", (FastLeafExecutionContext,),
                     {"max_objects": max_objects})
    return strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription,
                             types=NODE_CLASSES,
                             extensions=extensions or [],
                             config=StrawberryConfig(scalar_map=SCALARS),
                             execution_context_class=execution)
