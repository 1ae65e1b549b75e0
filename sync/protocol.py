"""The wire protocol's messages as plain dataclasses (GraphQL adapters map them 1:1).

See docs/sync-protocol.md for what each field means to a client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PROTOCOL_VERSIONS = frozenset({1})

MutationOp = Literal["CREATE", "UPDATE", "DELETE"]
SyncStatus = Literal["APPLIED", "MERGED", "CONFLICT", "REJECTED"]
SyncOp = Literal["UPSERT", "DELETE", "EVICT"]


@dataclass(frozen=True)
class MutationIn:
    mutation_id: int
    entity: str
    op: MutationOp
    id: str
    base_version: int | None = None
    fields: dict[str, Any] | None = None
    client_time: str | None = None


@dataclass(frozen=True)
class PushIn:
    client_id: str
    protocol_version: int
    mutations: list[MutationIn]
    app_version: str | None = None
    #: False: APPLIED results carry no `data`; the device takes the record from its next
    #: pull, which brings its own writes back anyway (see docs/sync-protocol.md).
    return_data: bool = True


@dataclass(frozen=True)
class SyncError:
    code: str
    message: str
    field: str | None = None
    retryable: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "field": self.field,
                "retryable": self.retryable}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> SyncError | None:
        return None if d is None else cls(d["code"], d["message"], d.get("field"), d["retryable"])


@dataclass
class MutationOut:
    mutation_id: int
    status: SyncStatus
    id: str
    version: int | None = None
    data: dict[str, Any] | None = None
    conflict_id: str | None = None
    error: SyncError | None = None
    warnings: list[SyncError] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "mutationId": self.mutation_id, "status": self.status, "id": self.id,
            "version": self.version, "data": self.data, "conflictId": self.conflict_id,
            "error": self.error.to_json() if self.error else None,
            "warnings": [w.to_json() for w in self.warnings],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MutationOut:
        return cls(
            mutation_id=d["mutationId"], status=d["status"], id=d["id"], version=d["version"],
            data=d["data"], conflict_id=d["conflictId"], error=SyncError.from_json(d["error"]),
            warnings=[w for w in (SyncError.from_json(x) for x in d.get("warnings", [])) if w],
        )


@dataclass
class PushOut:
    last_mutation_id: int
    results: list[MutationOut]


@dataclass(frozen=True)
class ChangeOut:
    entity: str
    id: str
    op: SyncOp
    version: int
    data: dict[str, Any] | None


@dataclass
class PullOut:
    changes: list[ChangeOut]
    cursor: str
    has_more: bool
    reset: bool
    last_mutation_id: int
    #: Where the device stands for certain (the cursor it sent, or a snapshot's start),
    #: and whether its device record needs updating (see PullEngine.pull's `record`).
    seq: int = 0
    needs_record: bool = False


class SyncRequestError(Exception):
    """The whole request is refused (bad protocol version, foreign client id, too big)."""

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
