"""analytics rollups: sales cubes and basket counts per month (per day for the recent past)
kept by `fieldsync jobs daily`

Analytics-only tables (schema/analytics/tables.py), not synced. They start empty: until the
daily job first fills them, every query reads the orders live (same answers, slower).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 11:55:58.466053
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import sync.model
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('analytics_rollup',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=True),
    sa.Column('last_day', sa.Date(), nullable=True),
    sa.Column('days_from', sa.Date(), nullable=True),
    sa.Column('refreshed_at', sync.model.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_analytics_rollup'))
    )
    op.create_table('basket_item_monthly',
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'product_id', name=op.f('pk_basket_item_monthly')),
    sqlite_with_rowid=False
    )
    op.create_table('basket_pair_monthly',
    sa.Column('product_a', sa.Uuid(), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('product_b', sa.Uuid(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('product_a', 'bucket', 'product_b', name=op.f('pk_basket_pair_monthly')),
    sqlite_with_rowid=False
    )
    op.create_table('sales_category_monthly',
    sa.Column('revenue_cents', sa.BigInteger(), nullable=False),
    sa.Column('cost_cents', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('rep_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'category', 'account_id', 'rep_id', name=op.f('pk_sales_category_monthly')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('sales_category_monthly', schema=None) as batch_op:
        batch_op.create_index('ix_sales_category_monthly_account', ['account_id', 'bucket'], unique=False)

    op.create_table('sales_category_total_monthly',
    sa.Column('revenue_cents', sa.BigInteger(), nullable=False),
    sa.Column('cost_cents', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('rep_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'category', 'rep_id', name=op.f('pk_sales_category_total_monthly')),
    sqlite_with_rowid=False
    )
    op.create_table('sales_product_total_monthly',
    sa.Column('revenue_cents', sa.BigInteger(), nullable=False),
    sa.Column('cost_cents', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'product_id', name=op.f('pk_sales_product_total_monthly')),
    sqlite_with_rowid=False
    )
    op.create_table('sales_fact_monthly',
    sa.Column('revenue_cents', sa.BigInteger(), nullable=False),
    sa.Column('cost_cents', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('rep_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'product_id', 'account_id', 'rep_id', name=op.f('pk_sales_fact_monthly')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('sales_fact_monthly', schema=None) as batch_op:
        batch_op.create_index('ix_sales_fact_monthly_account', ['account_id', 'bucket'], unique=False)

    op.create_table('sales_order_monthly',
    sa.Column('revenue_cents', sa.BigInteger(), nullable=False),
    sa.Column('cost_cents', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('rep_id', sa.Uuid(), nullable=False),
    sa.Column('first_order_date', sa.Date(), nullable=False),
    sa.Column('last_order_date', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'account_id', 'rep_id', name=op.f('pk_sales_order_monthly')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('sales_order_monthly', schema=None) as batch_op:
        batch_op.create_index('ix_sales_order_monthly_account', ['account_id', 'bucket'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sales_order_monthly', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_order_monthly_account')

    op.drop_table('sales_order_monthly')
    with op.batch_alter_table('sales_fact_monthly', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_fact_monthly_account')

    op.drop_table('sales_fact_monthly')
    with op.batch_alter_table('sales_category_monthly', schema=None) as batch_op:
        batch_op.drop_index('ix_sales_category_monthly_account')

    op.drop_table('sales_category_monthly')
    op.drop_table('sales_product_total_monthly')
    op.drop_table('sales_category_total_monthly')
    op.drop_table('basket_pair_monthly')
    op.drop_table('basket_item_monthly')
    op.drop_table('analytics_rollup')
