"""fewer indexes on the write path

A push writes every order, its lines and a change-log row per write; each index costs
every one of those rows. `sales_order.account_id` and `order_line.order_id` are already
the first columns of ix_sales_order_account_date and uq_order_line_no. The change log's
`prev_scope_key` and `prev_holder_id` are set only by moves and scope changes, so their
indexes become partial (pulls look them up by value, which implies NOT NULL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PARTIAL = ("prev_scope_key", "prev_holder_id")


def upgrade() -> None:
    op.drop_index("ix_sales_order_account_id", table_name="sales_order")
    op.drop_index("ix_order_line_order_id", table_name="order_line")
    for name in _PARTIAL:
        op.drop_index(f"ix_sync_change_{name}", table_name="sync_change")
        where = sa.text(f"{name} IS NOT NULL")
        op.create_index(f"ix_sync_change_{name}", "sync_change", [name], unique=False,
                        postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name in _PARTIAL:
        op.drop_index(f"ix_sync_change_{name}", table_name="sync_change")
        op.create_index(f"ix_sync_change_{name}", "sync_change", [name], unique=False)
    op.create_index("ix_order_line_order_id", "order_line", ["order_id"], unique=False)
    op.create_index("ix_sales_order_account_id", "sales_order", ["account_id"], unique=False)
