"""Analytics-only tables: sales rollups kept by `fieldsync jobs daily`.

They are derived data, never synced (not registered with `sync/`): the daily job
recomputes them from the orders (schema.analytics.rollup) and the queries read them for
the parts of a period whose orders have not changed since (see `rollup.RollupState`),
live rows for the rest. Rows are per **bucket**: a month (yyyymm, e.g. 202605), and also a
day (yyyymmdd, e.g. 20260517) from the first day of the previous month on.
Every cube with accounts is keyed by bucket, account and rep, so the one scope rule (an
order's scope key is its account) still applies: `account_id IN (visible keys)`.

* `sales_order_monthly`: per bucket, account and rep (who took the order): revenue, cost,
  quantity, orders, first and last order date. Order-level figures.
* `sales_category_monthly`: the same per product category (the category of the product
  when it was rolled up; a category change rebuilds it). `order_count` = orders
  holding at least one product of the category.
* `sales_fact_monthly`: the same per product. `order_count` = orders holding the product.
* `sales_category_total_monthly` (per bucket, category and rep) and
  `sales_product_total_monthly` (per bucket and product): the same for the whole company,
  no account. Read for an admin's figures that need no account (no distinct customers,
  no place dimension or filter): a few hundred rows a month instead of tens of thousands.
* `basket_item_monthly` / `basket_pair_monthly`: company-wide orders per product and per
  pair of products (first id < second id), for basket analysis.

On SQLite the cubes are WITHOUT ROWID tables: rows are stored in primary-key order, so a
run of buckets is one sequential read with every measure at hand (no lookup per row).
* `analytics_rollup`: one row: the change-log position the rollups are current with.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sync.model import UTCDateTime


class _Measures(SQLModel):
    revenue_cents: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    cost_cents: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    quantity: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    order_count: int = Field(default=0, nullable=False)


class SalesOrderMonthly(_Measures, table=True):
    __tablename__ = "sales_order_monthly"
    bucket: int = Field(primary_key=True)
    account_id: uuid.UUID = Field(primary_key=True)
    rep_id: uuid.UUID = Field(primary_key=True)
    first_order_date: date
    last_order_date: date

    # The primary key serves whole-company reads by bucket; this one a scope's accounts.
    __table_args__ = (sa.Index("ix_sales_order_monthly_account", "account_id", "bucket"),
                      {"sqlite_with_rowid": False})


class SalesCategoryMonthly(_Measures, table=True):
    __tablename__ = "sales_category_monthly"
    bucket: int = Field(primary_key=True)
    category: str = Field(primary_key=True, max_length=64)
    account_id: uuid.UUID = Field(primary_key=True)
    rep_id: uuid.UUID = Field(primary_key=True)

    __table_args__ = (sa.Index("ix_sales_category_monthly_account", "account_id", "bucket"),
                      {"sqlite_with_rowid": False})


class SalesFactMonthly(_Measures, table=True):
    __tablename__ = "sales_fact_monthly"
    bucket: int = Field(primary_key=True)
    product_id: uuid.UUID = Field(primary_key=True)
    account_id: uuid.UUID = Field(primary_key=True)
    rep_id: uuid.UUID = Field(primary_key=True)

    __table_args__ = (sa.Index("ix_sales_fact_monthly_account", "account_id", "bucket"),
                      {"sqlite_with_rowid": False})


class SalesCategoryTotalMonthly(_Measures, table=True):
    __tablename__ = "sales_category_total_monthly"
    bucket: int = Field(primary_key=True)
    category: str = Field(primary_key=True, max_length=64)
    rep_id: uuid.UUID = Field(primary_key=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


class SalesProductTotalMonthly(_Measures, table=True):
    __tablename__ = "sales_product_total_monthly"
    bucket: int = Field(primary_key=True)
    product_id: uuid.UUID = Field(primary_key=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


class BasketItemMonthly(SQLModel, table=True):
    __tablename__ = "basket_item_monthly"
    bucket: int = Field(primary_key=True)
    product_id: uuid.UUID = Field(primary_key=True)
    order_count: int = Field(nullable=False)

    __table_args__ = ({"sqlite_with_rowid": False},)


class BasketPairMonthly(SQLModel, table=True):
    __tablename__ = "basket_pair_monthly"
    #: Reads pick the frequent products first, then their pairs bucket by bucket.
    product_a: uuid.UUID = Field(primary_key=True)
    bucket: int = Field(primary_key=True)
    product_b: uuid.UUID = Field(primary_key=True)
    order_count: int = Field(nullable=False)

    __table_args__ = ({"sqlite_with_rowid": False},)


class AnalyticsRollup(SQLModel, table=True):
    __tablename__ = "analytics_rollup"
    name: str = Field(primary_key=True, max_length=32)
    #: The rollups hold every change up to this change-log position (`sync_change.seq`).
    seq: int = Field(sa_type=sa.BigInteger, nullable=False)
    #: The first and last day with a sale when they were computed (a month partly in a
    #: query's period is still read from them when its other days held no sale).
    first_day: date | None = Field(default=None)
    last_day: date | None = Field(default=None)
    #: From this day on there are day buckets too (the recent past).
    days_from: date | None = Field(default=None)
    refreshed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
