"""JSON text for responses and JSON columns: orjson, with the standard library where
orjson refuses what a client may legally send.

orjson is several times faster on a 1 MB sync page and on a push's result documents,
but it refuses integers wider than 64 bits and nesting deeper than 255 levels. A
rejected mutation is stored with the fields the device sent, so such a value must never
fail the push (the device would resend the same batch for ever). Reading stays with the
standard library: orjson would turn those integers into floats.
"""

from __future__ import annotations

import json

import orjson


def dumps(value: object) -> str:
    try:
        # Without OPT_NON_STR_KEYS first: it more than doubles the cost of every document,
        # and only a dict with keys that are not strings needs it.
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: such a key, a huge integer, deep nesting
        pass
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)

