"""The parse and validation caches hit for a repeated operation (a sync poll, above all).

Strawberry's limiter extensions mint a new validation-rule class per request unless the
rules are built once; the validation cache keys on those classes, so every request would
validate again (~13 % of an empty pull's CPU)."""

from __future__ import annotations

from typing import Any

from strawberry.extensions.parser_cache import _get_parse_cache
from strawberry.extensions.validation_cache import _get_validate_cache

from tests.conftest import World


async def test_a_repeated_operation_is_parsed_and_validated_once(as_user: Any,
                                                                 world: World) -> None:
    rep = await as_user("rep1")
    query = "query Poll($c: ID!) { syncPull(clientId: $c) { cursor hasMore lastMutationId } }"
    await rep.ok(query, {"c": "cache-probe"})
    validate, parse = _get_validate_cache(256).cache_info(), _get_parse_cache(256).cache_info()
    for _ in range(5):
        await rep.ok(query, {"c": "cache-probe"})
    assert _get_validate_cache(256).cache_info().hits - validate.hits == 5
    assert _get_validate_cache(256).cache_info().misses == validate.misses
    assert _get_parse_cache(256).cache_info().hits - parse.hits == 5
