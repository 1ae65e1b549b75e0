"""Record ids minted on the device: UUIDv7 (time-ordered, so B-tree inserts on the
server stay local), as the protocol recommends. The stdlib has no uuid7 before 3.14."""

from __future__ import annotations

import os
import time
import uuid

_last_ms = 0
_seq = 0


def uuid7() -> str:
    """A RFC 9562 UUIDv7 string; monotonic within this process."""
    global _last_ms, _seq
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        ms = _last_ms
        _seq = (_seq + 1) & 0xFFF
        if _seq == 0:  # 4096 ids in one millisecond: borrow the next one
            ms += 1
    else:
        _seq = int.from_bytes(os.urandom(2), "big") & 0x7FF
    _last_ms = ms
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _seq << 64 | 0b10 << 62 | rand
    return str(uuid.UUID(int=value))
