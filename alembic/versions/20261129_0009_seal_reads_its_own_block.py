"""the change-log seal numbers its own block by offset (PostgreSQL)

`sync_seal_log()` (0005, 0007) found a transaction's provisional rows with `seq < 0`.
Every sealed row leaves a dead entry at its old negative number in the primary-key
index until VACUUM, so that range scan walked every row sealed since the last VACUUM:
about 1,500 buffer hits per commit during a push benchmark. It then numbered the rows
by joining them to a window over themselves, which the planner, expecting one row,
ran as a nested loop: 10,000 comparisons for a 100-row block. All of it under the log
head's row lock, which serialises every commit.

Blocks come from a sequence, so no other transaction writes into this one's, and a
flush writes its block downwards from its first number without holes. The trigger
fires on that first row (`NEW.seq`, a multiple of 2^24), so a row's place in the
block is `NEW.seq - seq`, and the range `(NEW.seq - 2^24, NEW.seq]` is all there is to
read. A transaction with several blocks fires once per block, in the order they were
written: rows are numbered as before. The head moves by the block's span, so even a
hole (none is ever written) would keep every number unique and below the head.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 01:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: As in 0007: number the block after the head, move the head, tell the listeners.
_FUNCTION = """
    CREATE OR REPLACE FUNCTION sync_seal_log() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        span bigint;
        base bigint;
    BEGIN
        -- 16777216 = 2^24, sync.writer.BLOCK (a migration keeps its own copy)
        SELECT NEW.seq - min(seq) + 1 INTO span FROM sync_change
        WHERE seq <= NEW.seq AND seq > NEW.seq - 16777216;
        IF span IS NULL THEN  -- the block's rows are gone: nothing to number
            RETURN NULL;
        END IF;
        UPDATE sync_log_head SET last_seq = last_seq + span WHERE id = 1
        RETURNING last_seq - span INTO base;
        UPDATE sync_change SET seq = base + 1 + (NEW.seq - seq)
        WHERE seq <= NEW.seq AND seq > NEW.seq - 16777216;
        PERFORM pg_notify('fieldsync_changes', (base + span)::text);
        RETURN NULL;
    END $$
"""

#: 0007's version, for the downgrade.
_PREVIOUS = """
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
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_PREVIOUS)
