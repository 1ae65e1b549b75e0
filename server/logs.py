"""Logging: human-readable by default, one JSON object per line with FIELDSYNC_LOG_JSON."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from graphql import GraphQLError


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "user_id", "client_id", "event"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class ClientErrorsWithoutTraceback(logging.Filter):
    """strawberry logs every error of a response at ERROR, with a traceback. An error
    raised on purpose for the client (a page size out of range, a document that does not
    validate) is not the server's trouble: one line at INFO. Unexpected exceptions keep
    their level and traceback (and `CorrelatedMaskErrors` logs them with their ref)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.msg
        if isinstance(error, GraphQLError) and (
                error.original_error is None or isinstance(error.original_error, GraphQLError)):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def configure(json_lines: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("fieldsync")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def quiet_client_errors() -> None:
    """Install `ClientErrorsWithoutTraceback` on strawberry's logger (once)."""
    strawberry_log = logging.getLogger("strawberry.execution")
    if not any(isinstance(f, ClientErrorsWithoutTraceback) for f in strawberry_log.filters):
        strawberry_log.addFilter(ClientErrorsWithoutTraceback())
