"""Latency trends and the predicted time a threshold is crossed, from a least-squares line over a sliding window.

The slope is tested against zero (Student's t, two-sided), so noise is called stable: a trend is "degrading" or
"improving" only when the slope is significant at `alpha` and moves the level by at least 5 % over the window.
The prediction follows Prometheus' predict_linear, with an uncertainty band from the regression's prediction
interval: the earliest time is where the interval's upper bound reaches the threshold, the latest where its lower
bound does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
MIN_POINTS = 8
MIN_CHANGE = 0.05  # a trend moves the level by at least 5 % over its window


@dataclass(frozen=True)
class Line:
    slope: float  # y units per x unit
    intercept: float
    n: int
    x_mean: float
    sxx: float
    residual_sd: float
    slope_se: float

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x


def fit(xs: Sequence[float], ys: Sequence[float]) -> Line | None:
    n = len(xs)
    if n < MIN_POINTS:
        return None
    x_mean = sum(xs) / n
    y_mean = sum(ys) / n
    sxx = sum((x - x_mean) ** 2 for x in xs)
    if sxx <= 0:
        return None
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = y_mean - slope * x_mean
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    residual_sd = math.sqrt(residual / (n - 2)) if n > 2 else 0.0
    return Line(slope, intercept, n, x_mean, sxx, residual_sd, residual_sd / math.sqrt(sxx))


def _betacf(a: float, b: float, x: float) -> float:
    # Continued fraction of the incomplete beta function (Numerical Recipes, betacf).
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 3e-14:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1 - x) / b


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    if df <= 0:
        return 1.0
    if math.isinf(t):
        return 0.0
    return _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def t_critical(df: int, alpha: float = ALPHA) -> float:
    """The two-sided critical value, by bisection on the p-value."""
    low, high = 0.0, 1_000.0
    for _ in range(100):
        mid = (low + high) / 2
        if t_two_sided_p(mid, df) > alpha:
            low = mid
        else:
            high = mid
    return high


@dataclass(frozen=True)
class Trend:
    direction: str  # improving | stable | degrading (for latency: rising is degrading)
    slope_per_hour: float
    confidence: float  # 1 - p-value of the slope
    points: int


def trend(
    line: Line | None, *, units_per_hour: float = 3600.0, alpha: float = ALPHA, min_change: float = MIN_CHANGE
) -> Trend | None:
    if line is None:
        return None
    if line.slope_se == 0:
        p = 0.0 if line.slope != 0 else 1.0
    else:
        p = t_two_sided_p(line.slope / line.slope_se, line.n - 2)
    # Significant is not enough: with thousands of checks a slope of a few microseconds an hour passes the test.
    # The change over the window must also matter: at least `min_change` of the level.
    span = math.sqrt(12 * line.sxx / line.n)  # the width of the window, for evenly spread points
    change = abs(line.slope) * span
    level = abs(line.at(line.x_mean))
    direction = "stable"
    if p < alpha and change >= min_change * level:
        direction = "degrading" if line.slope > 0 else "improving"
    return Trend(direction, line.slope * units_per_hour, round(1.0 - p, 4), line.n)


@dataclass(frozen=True)
class Prediction:
    threshold: float
    at: float  # x where the fitted line reaches the threshold
    earliest: float  # where the prediction interval's upper bound reaches it
    latest: float | None  # where its lower bound does (None: not within the horizon)


def predict_crossing(
    line: Line | None, threshold: float, now: float, horizon: float, alpha: float = ALPHA
) -> Prediction | None:
    """When a rising line reaches `threshold` after `now` (within `horizon`), with its band; None when it does not."""
    if line is None or line.slope <= 0 or line.at(now) >= threshold:
        return None
    crossing = (threshold - line.intercept) / line.slope
    if crossing > now + horizon:
        return None
    t = t_critical(max(1, line.n - 2), alpha)

    def half_width(x: float) -> float:
        return t * line.residual_sd * math.sqrt(1 + 1 / line.n + (x - line.x_mean) ** 2 / line.sxx)

    def first_x(bound: int) -> float | None:
        # The first x >= now where line + bound * half_width reaches the threshold, by bisection (monotone enough
        # for a rising line within the horizon).
        def above(x: float) -> bool:
            return line.at(x) + bound * half_width(x) >= threshold

        if above(now):
            return now
        high = now + horizon
        if not above(high):
            return None
        low = now
        for _ in range(80):
            mid = (low + high) / 2
            if above(mid):
                high = mid
            else:
                low = mid
        return high

    earliest = first_x(+1)
    return Prediction(threshold, crossing, earliest if earliest is not None else crossing, first_x(-1))
