"""Monthly forecasts: seasonal naive and Holt-Winters, with an honest held-out error.

Pure Python over at most a few dozen monthly points (the series comes from one SQL
aggregate). The methods, as documented in docs/manager-queries.md:

* NAIVE: every future month equals the last observed month.
* SEASONAL_NAIVE: a month equals the same month one season (12 months) earlier.
* HOLT_WINTERS: additive trend, multiplicative 12-month seasonality (Winters 1960). The
  trend starts at the mean same-month change between the first season and the months
  after it; the first season, over that trend line, seeds the seasonal indices. Alpha,
  beta and gamma are chosen on a grid by the smallest sum of squared one-step errors.
  Needs positive values and at least 20 months.
* AUTO: every method the series is long enough for is refitted without the last
  `holdout` months and scored on them; the one with the smallest mean absolute error
  wins and is refitted on the whole series for the forecast.

The band is an approximate 80% interval: ±1.28 * the holdout RMSE, widened by √h.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SEASON = 12
HW_MIN_POINTS = SEASON + 8
Z80 = 1.2816

_ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
_BETAS = (0.0, 0.02, 0.05, 0.1, 0.2)
_GAMMAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


class Method(enum.Enum):
    AUTO = "auto"
    NAIVE = "naive"
    SEASONAL_NAIVE = "seasonal_naive"
    HOLT_WINTERS = "holt_winters"


@dataclass(frozen=True)
class HoldoutError:
    method: Method
    months: int
    mae: float
    #: Mean absolute percentage error in percent; None when an actual value is 0.
    mape: float | None
    rmse: float
    actual: tuple[float, ...]
    predicted: tuple[float, ...]


@dataclass(frozen=True)
class Forecast:
    method: Method
    values: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    #: The chosen method's error on the held-out months (None: series too short).
    holdout: HoldoutError | None
    #: Every method that could be scored on the holdout, best first.
    candidates: tuple[HoldoutError, ...]


def naive(series: Sequence[float], horizon: int) -> list[float]:
    return [float(series[-1])] * horizon


def seasonal_naive(series: Sequence[float], horizon: int, season: int = SEASON) -> list[float]:
    n = len(series)
    return [float(series[n - season + (h % season)]) for h in range(horizon)]


def _initial_state(y: Sequence[float], season: int) -> tuple[float, float, list[float]]:
    """Level and trend at the end of the first season, and its seasonal indices.

    The trend is the mean same-month change between the first season and what follows
    it (up to a whole second season), divided by the season length; the first season's
    indices are its values over that linear trend line.
    """
    mean = sum(y[:season]) / season
    pairs = [(y[t + season] - y[t]) / season for t in range(min(season, len(y) - season))]
    trend = sum(pairs) / len(pairs) if pairs else 0.0
    centre = (season - 1) / 2
    line = [mean + (t - centre) * trend for t in range(season)]
    if min(line) <= 0:
        line, trend = [mean] * season, 0.0
    return line[-1], trend, [v / base for v, base in zip(y[:season], line, strict=True)]


def _hw_run(y: Sequence[float], season: int, alpha: float, beta: float,
            gamma: float) -> tuple[float, float, list[float], float]:
    """One pass: (level, trend, seasonal indices, SSE of one-step errors)."""
    level, trend, seasonal = _initial_state(y, season)
    sse = 0.0
    for t in range(season, len(y)):
        s = seasonal[t % season]
        err = y[t] - (level + trend) * s
        sse += err * err
        prev = level
        level = alpha * y[t] / s + (1 - alpha) * (level + trend)
        trend = beta * (level - prev) + (1 - beta) * trend
        seasonal[t % season] = gamma * y[t] / level + (1 - gamma) * s if level > 0 else s
    return level, trend, seasonal, sse


def holt_winters(series: Sequence[float], horizon: int, season: int = SEASON) -> list[float]:
    y = [float(v) for v in series]
    best = min(itertools.product(_ALPHAS, _BETAS, _GAMMAS),
               key=lambda p: _hw_run(y, season, *p)[3])
    level, trend, seasonal, _ = _hw_run(y, season, *best)
    n = len(y)
    return [max(0.0, (level + (h + 1) * trend) * seasonal[(n + h) % season])
            for h in range(horizon)]


def _usable(method: Method, series: Sequence[float]) -> bool:
    if method is Method.HOLT_WINTERS:
        return len(series) >= HW_MIN_POINTS and min(series[:SEASON]) > 0 and min(series) >= 0
    if method is Method.SEASONAL_NAIVE:
        return len(series) >= SEASON
    return len(series) >= 1


_METHODS: dict[Method, Callable[[Sequence[float], int], list[float]]] = {
    Method.NAIVE: naive, Method.SEASONAL_NAIVE: seasonal_naive,
    Method.HOLT_WINTERS: holt_winters,
}


def score(method: Method, series: Sequence[float], holdout: int) -> HoldoutError | None:
    """Refit `method` without the last `holdout` points and measure it on them."""
    train, actual = series[:-holdout], series[-holdout:]
    if holdout < 1 or not _usable(method, train):
        return None
    predicted = _METHODS[method](train, holdout)
    errors = [a - p for a, p in zip(actual, predicted, strict=True)]
    mape = None if any(a == 0 for a in actual) else \
        100 * sum(abs(e / a) for e, a in zip(errors, actual, strict=True)) / holdout
    return HoldoutError(method, holdout, sum(abs(e) for e in errors) / holdout, mape,
                        math.sqrt(sum(e * e for e in errors) / holdout),
                        tuple(float(a) for a in actual), tuple(predicted))


def forecast(series: Sequence[float], horizon: int, method: Method = Method.AUTO,
             holdout: int = 3) -> Forecast:
    """Forecast `horizon` months after `series` (oldest first, complete months only)."""
    if not series:
        return Forecast(method, (), (), (), None, ())
    candidates = sorted((s for m in _METHODS if (s := score(m, series, holdout)) is not None),
                        key=lambda s: s.mae)
    if method is Method.AUTO:
        usable = [c.method for c in candidates if _usable(c.method, series)]
        chosen = usable[0] if usable else Method.NAIVE
    else:
        chosen = method if _usable(method, series) else Method.NAIVE
    values = _METHODS[chosen](series, horizon)
    held = next((c for c in candidates if c.method is chosen), None)
    spread = held.rmse if held else 0.0
    lower = tuple(max(0.0, v - Z80 * spread * math.sqrt(h + 1)) for h, v in enumerate(values))
    upper = tuple(v + Z80 * spread * math.sqrt(h + 1) for h, v in enumerate(values))
    return Forecast(chosen, tuple(values), lower, upper, held, tuple(candidates))
