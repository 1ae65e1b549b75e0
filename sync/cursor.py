"""Opaque, tamper-evident pull cursors.

A cursor is base64url(JSON) plus an HMAC over it and the client id, so a client cannot
forge one, reuse another device's, or read anything into it. It carries no authority:
scope always comes from the caller's token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

from sync.protocol import SyncRequestError


@dataclass(frozen=True)
class Position:
    #: Changes up to and including `seq` have been delivered (or are being backfilled).
    seq: int
    #: A backfill ("b") or eviction ("e") in progress: of one scope key (hex) or "*".
    phase: str | None = None
    key: str | None = None
    entity: int = 0
    after: str | None = None


class CursorCodec:
    """Signs with the first key; accepts any of them (so keys can rotate)."""

    def __init__(self, secrets: bytes | list[bytes]) -> None:
        self._secrets = [secrets] if isinstance(secrets, bytes) else list(secrets)

    @staticmethod
    def _mac(secret: bytes, body: bytes, client_id: str) -> str:
        mac = hmac.new(secret, body + b"|" + client_id.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:16]).decode().rstrip("=")

    def encode(self, pos: Position, client_id: str) -> str:
        body = base64.urlsafe_b64encode(
            json.dumps(asdict(pos), separators=(",", ":")).encode()).rstrip(b"=")
        return f"{body.decode()}.{self._mac(self._secrets[0], body, client_id)}"

    def decode(self, cursor: str, client_id: str) -> Position:
        body, _, mac = cursor.partition(".")
        valid = body and any(hmac.compare_digest(mac, self._mac(k, body.encode(), client_id))
                             for k in self._secrets)
        if not valid:
            raise SyncRequestError("INVALID_CURSOR", "the cursor is not valid for this client; "
                                   "start again with cursor null")
        try:
            raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            return Position(**raw)
        except (ValueError, TypeError) as exc:
            raise SyncRequestError("INVALID_CURSOR", "the cursor is malformed") from exc
