"""change-log numbers assigned inside COMMIT (PostgreSQL)

A transaction writes its change-log rows with provisional negative numbers, in blocks of
2^24 taken from `sync_change_provisional` (one block per flush, numbered downwards from
-block * 2^24). The first row of each block fires a deferred constraint trigger, which at
COMMIT numbers every provisional row the transaction wrote, in the order written, after
the log head. The head's row lock, which makes sequence order equal commit order, is
then held for that statement and the commit only, never across a round trip to the
application. A transaction's provisional rows are the only negative ones it can see: other
transactions' are uncommitted.

SQLite is untouched: its single writer numbers rows as it writes them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 17:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BLOCK = 1 << 24  # sync.writer.BLOCK; a migration keeps its own copy of the value


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE sync_change_provisional")
    # `c.seq < 0` on the updated side too: without it the planner hash-joins the whole log.
    op.execute("""
        CREATE FUNCTION sync_seal_log() RETURNS trigger LANGUAGE plpgsql AS $$
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
    op.execute(f"""
        CREATE CONSTRAINT TRIGGER sync_change_seal AFTER INSERT ON sync_change
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (NEW.seq < 0 AND NEW.seq % {BLOCK} = 0)
        EXECUTE FUNCTION sync_seal_log()
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER sync_change_seal ON sync_change")
    op.execute("DROP FUNCTION sync_seal_log()")
    op.execute("DROP SEQUENCE sync_change_provisional")
