"""Models and migrations agree, and migrations run down and up on this database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import schema.tables  # noqa: F401
from alembic import command
from server.cli import alembic_config
from server.db import create_sync_engine
from server.settings import Settings
from sync.model import metadata


def test_autogenerate_finds_no_difference(settings: Settings) -> None:
    engine = create_sync_engine(settings)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(settings: Settings) -> None:
    cfg = alembic_config(settings)
    command.downgrade(cfg, "base")  # type: ignore[arg-type]
    engine = create_sync_engine(settings)
    with engine.connect() as conn:
        tables = set(conn.dialect.get_table_names(conn)) - {"alembic_version"}
    assert tables == set()
    command.upgrade(cfg, "head")  # type: ignore[arg-type]
    with engine.connect() as conn:
        assert "sync_change" in set(conn.dialect.get_table_names(conn))
    engine.dispose()
