"""JSON text for responses and JSON columns: orjson, and what orjson refuses still written."""

from __future__ import annotations

import json
import uuid

from server.jsontext import dumps


def test_documents_are_written_as_the_standard_library_reads_them_back() -> None:
    doc = {"a": [1, 2.5, None, True], "b": {"c": "é ✓"}, "n": 2**63 - 1}
    assert json.loads(dumps(doc)) == doc


def test_keys_that_are_not_strings_are_written_as_text() -> None:
    key = uuid.UUID(int=5)
    assert json.loads(dumps({1: "a", key: 2})) == {"1": "a", str(key): 2}


def test_integers_beyond_64_bits_and_deep_nesting_fall_back_to_the_standard_library() -> None:
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]
    assert json.loads(dumps({"n": 2**70, "deep": deep})) == {"n": 2**70, "deep": deep}
