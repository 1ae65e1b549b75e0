"""Alembic environment: migrations run synchronously on the URL from fieldsync's settings.

SQLite migrations use batch mode (SQLite cannot ALTER most things in place).
"""

from __future__ import annotations

import schema.tables  # noqa: F401  (registers every table on the metadata)
from alembic import context
from server.db import create_sync_engine
from server.settings import Settings
from sync.model import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    settings = Settings.from_env()
    if url:
        settings = Settings(**{**settings.__dict__, "database_url": url})
    engine = create_sync_engine(settings)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
