"""GraphQL types for sales volume and its forecast."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import strawberry
from strawberry.types import Info

from schema.analytics import forecast as F
from schema.analytics import gql_common as G
from schema.analytics.common import add_months, month_label, month_start
from schema.analytics.volume import (
    Compare,
    Dimension,
    Measures,
    SalesFilter,
    SalesVolume,
    VolumeRow,
    monthly_series,
)
from schema.enums import AccountTier
from schema.graphql import types as T
from schema.graphql.scalars import Cents

SalesDimension = strawberry.enum(Dimension, name="SalesDimension",
                                 description="What `salesVolume` can group by.")
SalesComparison = strawberry.enum(Compare, name="SalesComparison")
ForecastMethod = strawberry.enum(F.Method, name="ForecastMethod", description="See "
                                 "docs/manager-queries.md#forecast for each method.")


@strawberry.input(description="Restrict sales to these values (empty lists: no filter).")
class SalesFilterInput:
    territory_ids: list[strawberry.ID] | None = None
    rep_ids: list[strawberry.ID] | None = None
    account_ids: list[strawberry.ID] | None = None
    product_ids: list[strawberry.ID] | None = None
    categories: list[str] | None = None
    channels: list[str] | None = None
    tiers: list[AccountTier] | None = None

    def to_filter(self) -> SalesFilter:
        def ids(values: list[strawberry.ID] | None) -> tuple[uuid.UUID, ...]:
            return tuple(u for v in values or () if (u := G.uid(v)) is not None)

        return SalesFilter(ids(self.territory_ids), ids(self.rep_ids), ids(self.account_ids),
                           ids(self.product_ids), tuple(self.categories or ()),
                           tuple(self.channels or ()), tuple(self.tiers or ()))


@strawberry.type(description="Sales figures; margins for managers and admins only.")
class SalesMeasures:
    revenue_cents: Cents
    quantity: int
    order_count: int
    customer_count: int
    margin_cents: Cents | None


def measures(m: Measures, costs: bool) -> SalesMeasures:
    return SalesMeasures(revenue_cents=Cents(m.revenue_cents), quantity=m.quantity,
                         order_count=m.orders, customer_count=m.customers,
                         margin_cents=Cents(m.margin_cents) if costs else None)


def _growth(now: int, before: int) -> float | None:
    return None if not before else (now - before) / before


@strawberry.type(description="One group; only the dimensions asked for are set.")
class SalesVolumeRow:
    current: SalesMeasures
    previous: SalesMeasures | None
    revenue_change: float | None = strawberry.field(
        description="(current - previous) / previous revenue; null without a previous value.")
    category: str | None = None
    region: str | None = None
    channel: str | None = None
    tier: AccountTier | None = None
    month: str | None = strawberry.field(default=None, description='"2026-05"')
    quarter: str | None = strawberry.field(default=None, description='"2026-Q2"')
    year: int | None = None
    _ids: strawberry.Private[dict[Dimension, uuid.UUID]]

    @strawberry.field
    async def territory(self, info: Info) -> T.Territory | None:
        return await G.territory(info, self._ids.get(Dimension.TERRITORY))

    @strawberry.field
    async def rep(self, info: Info) -> T.UserSummary | None:
        return await G.user(info, self._ids.get(Dimension.REP))

    @strawberry.field
    async def product(self, info: Info) -> T.Product | None:
        return await G.product(info, self._ids.get(Dimension.PRODUCT))

    @strawberry.field
    async def account(self, info: Info) -> T.Account | None:
        return await G.account(info, self._ids.get(Dimension.ACCOUNT))


def volume_row(row: VolumeRow, costs: bool) -> SalesVolumeRow:
    k = row.key
    quarter = k.get(Dimension.QUARTER)
    return SalesVolumeRow(
        current=measures(row.current, costs),
        previous=measures(row.previous, costs) if row.previous is not None else None,
        revenue_change=_growth(row.current.revenue_cents, row.previous.revenue_cents)
        if row.previous is not None else None,
        category=k.get(Dimension.CATEGORY), region=k.get(Dimension.REGION),
        channel=k.get(Dimension.CHANNEL), tier=k.get(Dimension.TIER),
        month=month_label(k[Dimension.MONTH]) if Dimension.MONTH in k else None,
        quarter=f"{quarter // 10}-Q{quarter % 10}" if quarter is not None else None,
        year=k.get(Dimension.YEAR),
        _ids={d: v for d, v in k.items() if isinstance(v, uuid.UUID)})


@strawberry.type
class MonthValue:
    month: str
    value: float


@strawberry.type(description="How a method did on the held-out months.")
class ForecastError:
    method: ForecastMethod  # type: ignore[valid-type]
    months: int
    mae: float = strawberry.field(description="Mean absolute error, in the measure's unit.")
    mape: float | None = strawberry.field(description="Mean absolute percentage error (%).")
    rmse: float
    actual: list[MonthValue]
    predicted: list[MonthValue]


@strawberry.type(description="Monthly revenue forecast for the same scope and filters.")
class SalesForecast:
    method: ForecastMethod  # type: ignore[valid-type]
    history: list[MonthValue] = strawberry.field(description="Complete months used, oldest "
                                                 "first (revenue in cents).")
    forecast: list[MonthValue]
    lower: list[MonthValue] = strawberry.field(description="Approximate 80% band.")
    upper: list[MonthValue]
    holdout: ForecastError | None = strawberry.field(
        description="The chosen method refitted without the last months and scored on them.")
    candidates: list[ForecastError] = strawberry.field(description="Every method that could "
                                                       "be scored, best first.")


def _values(first_key: int, values: tuple[float, ...] | list[float]) -> list[MonthValue]:
    return [MonthValue(month=month_label(add_months(first_key, i)), value=round(v, 2))
            for i, v in enumerate(values)]


def sales_forecast(keys: list[int], series: list[float], result: F.Forecast) -> SalesForecast:
    after = add_months(keys[-1], 1) if keys else 0

    def error(e: F.HoldoutError) -> ForecastError:
        start = keys[len(keys) - e.months]
        return ForecastError(method=e.method, months=e.months, mae=round(e.mae, 2),
                             mape=None if e.mape is None else round(e.mape, 2),
                             rmse=round(e.rmse, 2), actual=_values(start, e.actual),
                             predicted=_values(start, e.predicted))

    return SalesForecast(
        method=result.method, history=_values(keys[0], series) if keys else [],
        forecast=_values(after, result.values), lower=_values(after, result.lower),
        upper=_values(after, result.upper),
        holdout=error(result.holdout) if result.holdout else None,
        candidates=[error(c) for c in result.candidates])


@dataclass(frozen=True)
class _Query:
    filters: SalesFilter
    last_complete_month: int


@strawberry.type(name="SalesVolume", description="Sales grouped by the dimensions asked "
                 "for, with the previous period alongside.")
class SalesVolumeResult:
    period: G.DateRange
    previous_period: G.DateRange | None
    group_by: list[SalesDimension]  # type: ignore[valid-type]
    totals: SalesMeasures
    previous_totals: SalesMeasures | None
    rows: list[SalesVolumeRow]
    group_count: int = strawberry.field(description="Groups before `limit` cut the list.")
    _query: strawberry.Private[_Query]

    @strawberry.field(description="Revenue of the next `months` months. History: up to "
                      "`historyMonths` complete months ending with the period's last complete "
                      "month; `holdout` months are held out to measure the error.")
    async def forecast(self, info: Info, months: int = 3, history_months: int = 36,
                       holdout: int = 3, method: ForecastMethod = F.Method.AUTO,  # type: ignore[valid-type]
                       ) -> SalesForecast:
        G.limit_of(months, "months", 24)
        G.limit_of(history_months, "historyMonths", 120)
        G.limit_of(holdout, "holdout", 12)
        last = self._query.last_complete_month
        first = add_months(last, 1 - history_months)
        found = await G.scoped(info, lambda scope: monthly_series(
            info.context.session, scope, self._query.filters, first, last))
        keys = sorted(found)
        # Leading months before the first sale are not history, they are absence of data.
        while keys and found[keys[0]].revenue_cents == 0:
            keys.pop(0)
        series = [float(found[k].revenue_cents) for k in keys]
        return sales_forecast(keys, series, F.forecast(series, months, F.Method(method),
                                                       holdout))


def sales_volume_result(result: SalesVolume, filters: SalesFilter, costs: bool) -> SalesVolumeResult:
    end = result.period.end
    key = end.year * 100 + end.month
    month_ends = end == month_start(add_months(key, 1)) - timedelta(days=1)
    last = key if month_ends else add_months(key, -1)
    return SalesVolumeResult(
        period=G.date_range(result.period),
        previous_period=G.date_range(result.previous_period) if result.previous_period else None,
        group_by=list(result.dimensions), totals=measures(result.totals, costs),
        previous_totals=measures(result.previous_totals, costs)
        if result.previous_totals is not None else None,
        rows=[volume_row(r, costs) for r in result.rows], group_count=result.group_count,
        _query=_Query(filters, last))

