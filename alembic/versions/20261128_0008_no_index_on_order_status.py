"""no index on sales_order.status

Every pushed order wrote an entry into an index on a column of six values that no query
uses on its own: the order rules look orders up by account, the devices view by rep,
and analytics by date, each with its own index. Reading a status across all orders
scans them either way.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 20:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_sales_order_status", table_name="sales_order")


def downgrade() -> None:
    op.create_index("ix_sales_order_status", "sales_order", ["status"], unique=False)
