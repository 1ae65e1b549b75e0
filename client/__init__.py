"""fieldsync reference client: what a phone does, in Python, against the documented wire
protocol only (GraphQL over HTTP + graphql-ws). It imports nothing from the server.

See docs/client.md. Entry point: `Device`.
"""

from client.errors import (
    AuthenticationRequired,
    FieldsyncClientError,
    LoginFailed,
    NetworkError,
    ProtocolError,
    PushBlocked,
    RequestRefused,
)
from client.live import LiveSync
from client.store import LocalStore, Notice, OutboxEntry, Record
from client.sync import ENTITIES, PROTOCOL_VERSION, Device, SyncReport
from client.transport import RetryPolicy, Transport

__all__ = [
    "ENTITIES",
    "PROTOCOL_VERSION",
    "AuthenticationRequired",
    "Device",
    "FieldsyncClientError",
    "LiveSync",
    "LocalStore",
    "LoginFailed",
    "NetworkError",
    "Notice",
    "OutboxEntry",
    "ProtocolError",
    "PushBlocked",
    "Record",
    "RequestRefused",
    "RetryPolicy",
    "SyncReport",
    "Transport",
]
