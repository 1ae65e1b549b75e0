"""change log records the previous holder

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 09:34:21.986330
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sync_change', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_holder_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_sync_change_prev_holder_id'), ['prev_holder_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sync_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_change_prev_holder_id'))
        batch_op.drop_column('prev_holder_id')

