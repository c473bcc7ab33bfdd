"""Robust statistics for fusing numbers: medians, weighted medians, MAD and the modified z-score."""

from __future__ import annotations

import math
from collections.abc import Sequence

# 1.4826 * MAD estimates the standard deviation of normal data; 0.6745 = 1 / 1.4826 (Iglewicz and Hoaglin).
MAD_TO_SIGMA = 1.4826
# The standard error of a median is about sqrt(pi / 2) = 1.2533 times that of a mean.
MEDIAN_EFFICIENCY = 1.2533
Z_95 = 1.96


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of nothing")
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0


def weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value at which half of the total weight lies on either side (the midpoint when it falls between)."""
    pairs = sorted(zip(values, weights, strict=True))
    total = sum(weight for _, weight in pairs)
    if not pairs or total <= 0:
        return median(values)
    running = 0.0
    for index, (value, weight) in enumerate(pairs):
        running += weight
        if math.isclose(running, total / 2.0, rel_tol=1e-12):
            return (value + pairs[index + 1][0]) / 2.0 if index + 1 < len(pairs) else value
        if running > total / 2.0:
            return value
    return pairs[-1][0]


def mad(values: Sequence[float], centre: float | None = None) -> float:
    """Median absolute deviation from the median (or from `centre`)."""
    middle = median(values) if centre is None else centre
    return median([abs(value - middle) for value in values])


def effective_count(weights: Sequence[float]) -> float:
    """Kish's effective sample size: n for equal weights, less when a few weights dominate."""
    total = sum(weights)
    squares = sum(weight * weight for weight in weights)
    return (total * total / squares) if squares > 0 else float(len(weights))


def spread_of(values: Sequence[float]) -> float:
    """A robust standard deviation: from the MAD, or the plain one when over half the values are equal."""
    if len(values) < 2:
        return 0.0
    sigma = MAD_TO_SIGMA * mad(values)
    if sigma > 0:
        return sigma
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def modified_z_scores(values: Sequence[float], *, floor: float = 0.0) -> list[float]:
    """|x - median| / (1.4826 * MAD) per value. `floor` is the least scale (in the values' unit) so that when most
    sources agree exactly (MAD 0) a tiny difference is not called infinitely far."""
    middle = median(values)
    scale = max(MAD_TO_SIGMA * mad(values, middle), floor)
    if scale <= 0:
        return [0.0 if value == middle else math.inf for value in values]
    return [abs(value - middle) / scale for value in values]


def interval(centre: float, standard_error: float) -> tuple[float, float]:
    """A 95 % interval around `centre`."""
    return (centre - Z_95 * standard_error, centre + Z_95 * standard_error)
