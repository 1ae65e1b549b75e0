"""the change-log seal notifies listeners with the new head (PostgreSQL)

`sync_seal_log()` (0005) numbers a transaction's change-log rows inside its COMMIT. It
now also sends `NOTIFY fieldsync_changes` with the new head as payload, so every server
instance learns of every commit that grew the log, from any writer, without a read of
the head and without the separate NOTIFY transaction each push used to open (a pooled
connection, BEGIN, NOTIFY and COMMIT per commit).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 19:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # As in 0005, plus the notification. `c.seq < 0` on the updated side too: without it
    # the planner hash-joins the whole log. Listeners take the payload as the head:
    # deliveries follow commit order, which the head's row lock makes seq order. The
    # channel is server.notify.CHANNEL (a migration keeps its own copy).
    op.execute("""
        CREATE OR REPLACE FUNCTION sync_seal_log() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            head_seq bigint;
        BEGIN
            WITH pending AS (
                SELECT seq, row_number() OVER (ORDER BY seq DESC) AS n
                FROM sync_change WHERE seq < 0
            ), head AS (
                UPDATE sync_log_head SET last_seq = last_seq + (SELECT count(*) FROM pending)
                WHERE id = 1 RETURNING last_seq - (SELECT count(*) FROM pending) AS base
            ), sealed AS (
                UPDATE sync_change AS c SET seq = head.base + pending.n
                FROM pending, head WHERE c.seq = pending.seq AND c.seq < 0
                RETURNING c.seq
            )
            SELECT max(seq) INTO head_seq FROM sealed;
            IF head_seq IS NOT NULL THEN
                PERFORM pg_notify('fieldsync_changes', head_seq::text);
            END IF;
            RETURN NULL;
        END $$
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE OR REPLACE FUNCTION sync_seal_log() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            WITH pending AS (
                SELECT seq, row_number() OVER (ORDER BY seq DESC) AS n
                FROM sync_change WHERE seq < 0
            ), head AS (
                UPDATE sync_log_head SET last_seq = last_seq + (SELECT count(*) FROM pending)
                WHERE id = 1 RETURNING last_seq - (SELECT count(*) FROM pending) AS base
            )
            UPDATE sync_change AS c SET seq = head.base + pending.n
            FROM pending, head WHERE c.seq = pending.seq AND c.seq < 0;
            RETURN NULL;
        END $$
    """)
