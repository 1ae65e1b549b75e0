"""What can go wrong on the device side, as exceptions an app can tell apart.

Per-mutation outcomes (REJECTED, CONFLICT) are *not* exceptions: they are results stored
on the record and in the notices journal. Exceptions are for "this sync could not run".
"""

from __future__ import annotations


class FieldsyncClientError(Exception):
    """Base class of every error the reference client raises."""


class NetworkError(FieldsyncClientError):
    """Retries exhausted on network errors, timeouts, HTTP 5xx or 429.

    Nothing is lost: the outbox is untouched and the next `sync()` re-sends it (the
    server answers a re-sent mutationId with its stored result).
    """

    def __init__(self, message: str, attempts: int, last_error: BaseException | None = None,
                 status: int | None = None, maybe_processed: bool = True) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error
        self.status = status
        #: False only when the request surely never reached the server.
        self.maybe_processed = maybe_processed


class RequestRefused(FieldsyncClientError):
    """The server refused the whole request: a top-level GraphQL error with
    `extensions.code` (UNSUPPORTED_PROTOCOL, BATCH_TOO_LARGE, CLIENT_NOT_YOURS,
    INVALID_CURSOR, PAYLOAD_TOO_LARGE, UNAUTHENTICATED, ...)."""

    def __init__(self, code: str, message: str, retryable: bool = False,
                 status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status


class LoginFailed(FieldsyncClientError):
    """`login` answered AuthError (INVALID_CREDENTIALS, RATE_LIMITED, ...)."""

    def __init__(self, code: str, message: str, retry_after_seconds: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_seconds = retry_after_seconds


class AuthenticationRequired(FieldsyncClientError):
    """No usable session: never signed in, or the refresh token was refused
    (expired, revoked, TOKEN_REUSED). The app must ask the user to sign in again; the
    local store and the outbox are kept."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class PushBlocked(FieldsyncClientError):
    """A single mutation cannot be sent at all (alone it is over the server's body or
    batch limit). Mutation ids must stay gap-free, so nothing after it can be sent
    either; the app has to shrink or discard it (see `Device.discard_unsent`)."""

    def __init__(self, mutation_id: int, code: str, message: str) -> None:
        super().__init__(f"mutation {mutation_id}: {code}: {message}")
        self.mutation_id = mutation_id
        self.code = code
        self.message = message


class ProtocolError(FieldsyncClientError):
    """The server's answer does not have the documented shape."""
