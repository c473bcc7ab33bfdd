"""Fusion strategies: how the valid answers of several sources become one, and which sources were left out.

Built in: priority, majority (vote), weighted_mean, weighted_median, median (with outlier rejection). Another is
added by name with `register_strategy` or listed in the FUSION_STRATEGIES setting (dotted paths to Strategy
instances), loaded when the app starts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import import_string

from fusion import robust

WHOLE_ANSWER = ""  # the field key when no fields are given: the whole answer is fused


class StrategyError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Candidate:
    """One source's valid answer, ready to fuse."""

    server: str
    values: Mapping[str, Any]  # field path -> value
    weight: float
    priority: int


@dataclass
class FieldResult:
    value: Any
    method: str
    used: int
    dispersion: float | None = None
    interval: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "value": tidy(self.value),
            "method": self.method,
            "used": self.used,
            "dispersion": tidy(self.dispersion),
            "interval": [tidy(end) for end in self.interval] if self.interval is not None else None,
        }


def tidy(value: Any) -> Any:
    """A computed number without binary noise (65473.979999999996 -> 65473.98): 12 significant digits."""
    return float(f"{value:.12g}") if isinstance(value, float) and math.isfinite(value) else value


@dataclass
class Fused:
    fields: dict[str, FieldResult] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # server -> why
    error: str = ""  # the strategy could not decide (e.g. no majority)


@dataclass(frozen=True)
class Option:
    default: float | bool
    low: float = 0.0
    high: float = math.inf
    help: str = ""


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Strategy:
    name: str = ""
    description: str = ""
    options: Mapping[str, Option] = {}

    def parse_options(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        parsed: dict[str, Any] = {}
        for key, value in raw.items():
            spec = self.options.get(key)
            if spec is None:
                known = ", ".join(sorted(self.options)) or "none"
                raise StrategyError(f"options.{key}", f"{self.name} has no option {key!r} (its options: {known}).")
            if isinstance(spec.default, bool):
                if not isinstance(value, bool):
                    raise StrategyError(f"options.{key}", "Must be true or false.")
            elif not is_number(value) or not spec.low <= value <= spec.high:
                raise StrategyError(f"options.{key}", f"Must be a number from {spec.low:g} to {spec.high:g}.")
            parsed[key] = value
        return {key: parsed.get(key, spec.default) for key, spec in self.options.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "options": {key: {"default": spec.default, "help": spec.help} for key, spec in self.options.items()},
        }

    def fuse(self, candidates: Sequence[Candidate], fields: Sequence[str], options: Mapping[str, Any]) -> Fused:
        raise NotImplementedError


def numeric_fields(candidates: Sequence[Candidate], fields: Sequence[str]) -> set[str]:
    """Fields every candidate answered with a number (the others are fused by vote)."""
    return {name for name in fields if candidates and all(is_number(c.values.get(name)) for c in candidates)}


def vote(candidates: Sequence[Candidate], name: str, tolerance: float = 0.0) -> tuple[list[list[Candidate]], str]:
    """Group candidates whose values are equal (numbers within a relative `tolerance`), biggest group first (by
    count, then by weight). Returns the groups and the method's name."""
    groups: list[list[Candidate]] = []
    numeric = all(is_number(c.values.get(name)) for c in candidates)
    ordered = sorted(candidates, key=lambda c: c.values.get(name)) if numeric else list(candidates)
    for candidate in ordered:
        value = candidate.values.get(name)
        for group in groups:
            anchor = group[0].values.get(name)
            if numeric and abs(value - anchor) <= tolerance * max(abs(anchor), abs(value)):
                group.append(candidate)
                break
            if not numeric and canonical(value) == canonical(anchor):
                group.append(candidate)
                break
        else:
            groups.append([candidate])
    groups.sort(key=lambda g: (len(g), sum(c.weight for c in g)), reverse=True)
    return groups, "vote"


def _vote_result(candidates: Sequence[Candidate], name: str, fused: Fused, tolerance: float = 0.0) -> None:
    groups, method = vote(candidates, name, tolerance)
    winner = groups[0]
    values = [c.values.get(name) for c in winner]
    numeric = all(is_number(v) for v in values)
    value = robust.median(values) if numeric and len(winner) > 1 else values[0]
    spread = (max(values) - min(values)) if numeric else None
    interval = (min(values), max(values)) if numeric else None
    fused.fields[name] = FieldResult(value, method, len(winner), spread, interval)
    for group in groups[1:]:
        for candidate in group:
            shown = candidate.values.get(name)
            fused.excluded.setdefault(
                candidate.server,
                f"outvoted on {name or 'the answer'}: {canonical(shown)[:80]} against "
                f"{canonical(value)[:80]} ({len(group)} vs {len(winner)})",
            )


class PriorityStrategy(Strategy):
    name = "priority"
    description = "The valid answer of the source with the highest registry priority wins (then the healthiest)."

    def fuse(self, candidates: Sequence[Candidate], fields: Sequence[str], options: Mapping[str, Any]) -> Fused:
        # Candidates come healthy-first; the sort is stable, so equal priorities keep that order.
        ordered = sorted(candidates, key=lambda c: -c.priority)
        winner = ordered[0]
        fused = Fused()
        for name in fields:
            fused.fields[name] = FieldResult(winner.values.get(name), "priority", 1)
        for candidate in ordered[1:]:
            fused.excluded[candidate.server] = (
                f"not needed: {winner.server} has priority {winner.priority} (this source {candidate.priority})"
            )
        return fused


class MajorityStrategy(Strategy):
    name = "majority"
    description = "Majority vote per field: exact values, numbers within a relative tolerance count as one."
    options = {
        "tolerance": Option(0.0001, 0.0, 1.0, "relative difference under which two numbers are the same vote"),
        "require_majority": Option(True, help="the winning group must hold more than half of the valid answers"),
    }

    def fuse(self, candidates: Sequence[Candidate], fields: Sequence[str], options: Mapping[str, Any]) -> Fused:
        fused = Fused()
        for name in fields:
            _vote_result(candidates, name, fused, float(options["tolerance"]))
            winner = fused.fields[name].used
            if options["require_majority"] and winner * 2 <= len(candidates):
                fused.error = (
                    f"no majority on {name or 'the answer'}: the largest group holds {winner} of "
                    f"{len(candidates)} valid answers"
                )
        return fused


class NumericStrategy(Strategy):
    """Numbers fused by `combine`; other fields by vote. `reject` may name outliers first (left out of every
    field)."""

    def reject(
        self, points: Sequence[tuple[Candidate, float]], options: Mapping[str, Any], name: str
    ) -> dict[str, str]:
        return {}

    def combine(self, points: Sequence[tuple[Candidate, float]], options: Mapping[str, Any]) -> FieldResult:
        raise NotImplementedError

    def fuse(self, candidates: Sequence[Candidate], fields: Sequence[str], options: Mapping[str, Any]) -> Fused:
        fused = Fused()
        numeric = numeric_fields(candidates, fields)
        for name in fields:
            if name in numeric:
                points = [(c, float(c.values[name])) for c in candidates]
                for server, reason in self.reject(points, options, name).items():
                    fused.excluded.setdefault(server, reason)
        kept = [c for c in candidates if c.server not in fused.excluded]
        for name in fields:
            if name in numeric:
                fused.fields[name] = self.combine([(c, float(c.values[name])) for c in kept], options)
            else:
                _vote_result(kept, name, fused)
        return fused


class MedianStrategy(NumericStrategy):
    name = "median"
    description = (
        "Median after rejecting outliers: a modified z-score (distance from the median over 1.4826 x MAD) above "
        "the threshold leaves a source out of every field."
    )
    options = {
        "threshold": Option(3.5, 0.1, 100.0, "modified z-score above which a value is an outlier"),
        # Sources that agree exactly make the MAD zero; then a source a few basis points off (a wider spread, a
        # quote from the next tick) would be infinitely far. The least scale keeps those in; 50 bps off is still
        # ten of them from the median.
        "min_scale_bps": Option(
            5.0, 0.0, 10_000.0, "least scale, in basis points of the median, so exact agreement is not a zero scale"
        ),
    }

    def reject(
        self, points: Sequence[tuple[Candidate, float]], options: Mapping[str, Any], name: str
    ) -> dict[str, str]:
        if len(points) < 3:
            return {}  # two sources cannot outvote each other
        values = [value for _, value in points]
        middle = robust.median(values)
        floor = abs(middle) * float(options["min_scale_bps"]) / 10_000.0
        scores = robust.modified_z_scores(values, floor=floor)
        threshold = float(options["threshold"])
        return {
            candidate.server: (
                f"outlier on {name or 'the answer'}: {value:g} is {score:.1f} modified z-scores from the median "
                f"{middle:g} (threshold {threshold:g})"
            )
            for (candidate, value), score in zip(points, scores, strict=True)
            if score > threshold
        }

    def combine(self, points: Sequence[tuple[Candidate, float]], options: Mapping[str, Any]) -> FieldResult:
        values = [value for _, value in points]
        middle = robust.median(values)
        sigma = robust.spread_of(values)
        error = robust.MEDIAN_EFFICIENCY * sigma / math.sqrt(len(values))
        return FieldResult(middle, "median", len(values), sigma, robust.interval(middle, error))


class WeightedMeanStrategy(NumericStrategy):
    name = "weighted_mean"
    description = "Mean weighted by each source's quality (trust x health x latency x freshness)."

    def combine(self, points: Sequence[tuple[Candidate, float]], options: Mapping[str, Any]) -> FieldResult:
        weights = [max(candidate.weight, 1e-9) for candidate, _ in points]
        values = [value for _, value in points]
        total = sum(weights)
        mean = sum(w * v for w, v in zip(weights, values, strict=True)) / total
        sigma = math.sqrt(sum(w * (v - mean) ** 2 for w, v in zip(weights, values, strict=True)) / total)
        error = sigma / math.sqrt(robust.effective_count(weights))
        return FieldResult(mean, "weighted mean", len(values), sigma, robust.interval(mean, error))


class WeightedMedianStrategy(NumericStrategy):
    name = "weighted_median"
    description = "Median weighted by each source's quality: robust to a minority of wrong sources."

    def combine(self, points: Sequence[tuple[Candidate, float]], options: Mapping[str, Any]) -> FieldResult:
        weights = [max(candidate.weight, 1e-9) for candidate, _ in points]
        values = [value for _, value in points]
        middle = robust.weighted_median(values, weights)
        deviations = [abs(value - middle) for value in values]
        sigma = robust.MAD_TO_SIGMA * robust.weighted_median(deviations, weights) if len(values) > 1 else 0.0
        if sigma == 0 and len(values) > 1:
            sigma = robust.spread_of(values)
        error = robust.MEDIAN_EFFICIENCY * sigma / math.sqrt(robust.effective_count(weights))
        return FieldResult(middle, "weighted median", len(values), sigma, robust.interval(middle, error))


_strategies: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    """Make a strategy available by its name (a later registration of the same name replaces the earlier)."""
    if not strategy.name or not strategy.name.replace("_", "").isalnum():
        raise ValueError(f"a strategy needs a name of letters, digits and _: {strategy.name!r}")
    _strategies[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    strategy = _strategies.get(name)
    if strategy is None:
        raise StrategyError("strategy", f"Unknown strategy {name!r}; known: {', '.join(sorted(_strategies))}.")
    return strategy


def all_strategies() -> list[Strategy]:
    return [_strategies[name] for name in sorted(_strategies)]


def load_configured_strategies(paths: Sequence[str]) -> None:
    """Strategies named in settings: each path points at a Strategy instance or class."""
    for path in paths:
        found = import_string(path)
        register_strategy(found() if isinstance(found, type) else found)


for _builtin in (
    PriorityStrategy(),
    MajorityStrategy(),
    MedianStrategy(),
    WeightedMeanStrategy(),
    WeightedMedianStrategy(),
):
    register_strategy(_builtin)
