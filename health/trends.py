"""Latency trends and the predicted time a threshold is crossed, from a least-squares line over a sliding window.

A trend is told only from enough data: at least MIN_WINDOW_SECONDS between the first and last point and MIN_POINTS
points (`too_little_data` says why not, in words; alerting's prediction rule reads the same). The slope is tested
against zero (Student's t, two-sided), so noise is called stable: "stable" means no significant slope (or one too
small to matter); "degrading" or "improving" need a slope that is `significant` at `alpha` AND material: at least
MATERIAL_SHARE_PER_HOUR of the level per hour and at least MATERIAL_FLOOR_PER_HOUR (a flat 3.4 ms server drifting by
a tenth of a millisecond is not "improving").
The prediction follows Prometheus' predict_linear, with an uncertainty band from the regression's prediction
interval at PREDICTION_BAND: the earliest time is where the band's upper bound reaches the threshold, the latest
where its lower bound does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
MIN_POINTS = 10
# Less than this much data is no trend and no prediction: two minutes of checks once "reached 1000 ms around 4:15
# PM", and a first slow check made a flat server "improving" after one minute. Read at call time (tests lower it).
MIN_WINDOW_SECONDS = 600.0
MATERIAL_SHARE_PER_HOUR = 0.10  # a trend moves the level by at least 10 % per hour ...
MATERIAL_FLOOR_PER_HOUR = 10.0  # ... and by at least this much per hour (ms/h for latency)
PREDICTION_BAND = 0.80  # the share of outcomes the prediction band holds


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


def too_little_data(xs: Sequence[float], *, min_window: float | None = None, min_points: int = MIN_POINTS) -> str:
    """Why no trend (and no prediction) can be told from points at these times (seconds), in words; "" when one
    can: "too little data: 2 of 10 minutes, 24 checks"."""
    needed = MIN_WINDOW_SECONDS if min_window is None else min_window
    span = xs[-1] - xs[0] if len(xs) >= 2 else 0.0
    if span >= needed and len(xs) >= min_points:
        return ""
    if span < needed:
        return f"too little data: {_minutes(span)} of {_minutes(needed)} minutes, {len(xs)} checks"  # span rounded down
    return f"too little data: {len(xs)} of {min_points} checks"


def _minutes(seconds: float) -> str:
    # Rounded down, so 9 min 50 s of a 10 min minimum does not read "10 of 10 minutes".
    minutes = seconds / 60
    return f"{math.floor(minutes)}" if minutes >= 1 or minutes == 0 else f"{math.floor(minutes * 10) / 10}"


def p_value(line: Line) -> float:
    """The two-sided p-value of the slope against zero."""
    if line.slope_se == 0:
        return 0.0 if line.slope != 0 else 1.0
    return t_two_sided_p(line.slope / line.slope_se, line.n - 2)


def significant(line: Line | None, alpha: float = ALPHA) -> bool:
    """Whether the slope differs from zero at `alpha` (noise over a long window makes a slope too: this says if it
    is more than noise)."""
    return line is not None and p_value(line) < alpha


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


@dataclass(frozen=True)
class Trend:
    direction: str | None  # improving | stable | degrading (for latency: rising is degrading); None: too little data
    slope_per_hour: float | None
    confidence: float | None  # 1 - p-value of the slope
    points: int
    reason: str  # why this direction, in words
    p_value: float | None = None
    significant: bool = False
    material: bool = False
    span: float = 0.0  # from the first point to the last, in x units


def trend(
    line: Line | None,
    *,
    units_per_hour: float = 3600.0,
    alpha: float = ALPHA,
    share_per_hour: float = MATERIAL_SHARE_PER_HOUR,
    floor_per_hour: float = MATERIAL_FLOOR_PER_HOUR,
    unit: str = "ms",
) -> Trend | None:
    """The direction of a fitted line: degrading or improving only when its slope is significant and material."""
    if line is None:
        return None
    p = p_value(line)
    per_hour = line.slope * units_per_hour
    level = abs(line.at(line.x_mean))  # the mean of the points
    # Significant is not enough: with thousands of checks a slope of a few microseconds an hour passes the test.
    needed = max(share_per_hour * level, floor_per_hour)
    is_significant, is_material = p < alpha, abs(per_hour) >= needed
    span = math.sqrt(12 * line.sxx / line.n)  # the width of the window, for evenly spread points
    if is_significant and is_material:
        direction = "degrading" if line.slope > 0 else "improving"
        share = abs(per_hour) / level if level else math.inf
        reason = (
            f"{'rising' if line.slope > 0 else 'falling'} {abs(per_hour):.1f} {unit}/h "
            f"({share * 100:.0f} % of the level of {level:.1f} {unit} per hour; {_p_text(p)})"
        )
    elif is_significant:
        direction = "stable"
        reason = (
            f"stable: the slope of {per_hour:+.1f} {unit}/h is real ({_p_text(p)}) but small: under "
            f"{share_per_hour * 100:.0f} % of the level of {level:.1f} {unit} per hour or {floor_per_hour:.0f} {unit}/h"
        )
    else:
        direction = "stable"
        reason = f"stable: no significant slope ({_p_text(p)}, {line.n} checks)"
    return Trend(direction, per_hour, round(1.0 - p, 4), line.n, reason, p, is_significant, is_material, span)


def assess(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    min_window: float | None = None,
    units_per_hour: float = 3600.0,
    unit: str = "ms",
) -> tuple[Trend, Line | None]:
    """The trend of points at times `xs` (seconds), never from too little data (then its direction is None and its
    reason says how much there is); with the fitted line, for a prediction (None when there is no trend)."""
    problem = too_little_data(xs, min_window=min_window)
    line = None if problem else fit(xs, ys)
    found = trend(line, units_per_hour=units_per_hour, unit=unit)
    if found is None:
        span = xs[-1] - xs[0] if len(xs) >= 2 else 0.0
        return Trend(None, None, None, len(xs), problem or "too little data: no spread in time", span=span), None
    return found, line


@dataclass(frozen=True)
class Prediction:
    threshold: float
    at: float  # x where the fitted line reaches the threshold
    earliest: float  # where the prediction interval's upper bound reaches it
    latest: float | None  # where its lower bound does (None: not within the horizon)
    band: float = PREDICTION_BAND  # the share of outcomes between earliest and latest


def predict_crossing(
    line: Line | None, threshold: float, now: float, horizon: float, alpha: float = 1.0 - PREDICTION_BAND
) -> Prediction | None:
    """When a rising line reaches `threshold` after `now` (within `horizon`), with its band at 1 - `alpha`; None when
    it does not. Callers ask only of a significant, material rise from enough data (`assess`)."""
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
    return Prediction(threshold, crossing, earliest if earliest is not None else crossing, first_x(-1), 1.0 - alpha)
