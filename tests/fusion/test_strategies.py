"""The strategies on values worked out by hand, and registering another one by name."""

from __future__ import annotations

import math
import statistics

import pytest

from fusion.robust import modified_z_scores, weighted_median
from fusion.strategies import (
    Candidate,
    FieldResult,
    Fused,
    Option,
    Strategy,
    StrategyError,
    get_strategy,
    register_strategy,
)


def candidates(values: dict[str, float], weights: dict[str, float] | None = None) -> list[Candidate]:
    weights = weights or {}
    return [
        Candidate(server, {"last": value}, weights.get(server, 1.0), priority=100) for server, value in values.items()
    ]


def test_median_rejects_the_biased_source_and_takes_the_median_of_the_rest():
    values = {"a": 100.0, "b": 100.5, "c": 100.02, "d": 99.98, "e": 100.01}
    strategy = get_strategy("median")
    fused = strategy.fuse(candidates(values), ["last"], strategy.parse_options({}))
    assert set(fused.excluded) == {"b"} and "outlier on last" in fused.excluded["b"]
    assert fused.fields["last"].value == statistics.median([100.0, 100.02, 99.98, 100.01])
    low, high = fused.fields["last"].interval
    assert low < fused.fields["last"].value < high


def test_median_with_most_sources_exactly_equal_still_rejects_a_distant_one_but_keeps_a_tick_away():
    strategy = get_strategy("median")
    options = strategy.parse_options({})
    fused = strategy.fuse(candidates({"a": 100.0, "b": 100.0, "c": 100.0, "d": 100.5}), ["last"], options)
    assert set(fused.excluded) == {"d"}
    fused = strategy.fuse(candidates({"a": 100.0, "b": 100.0, "c": 100.0, "d": 100.002}), ["last"], options)
    assert fused.excluded == {}  # 0.2 bp from the others: well within the 5 bp least scale
    fused = strategy.fuse(candidates({"a": 100.0, "b": 100.0, "c": 100.0, "d": 100.04}), ["last"], options)
    assert fused.excluded == {}  # 4 bps: a wider spread or the next tick, not an outlier


def test_two_sources_cannot_outvote_each_other():
    strategy = get_strategy("median")
    fused = strategy.fuse(candidates({"a": 1.0, "b": 2.0}), ["last"], strategy.parse_options({}))
    assert fused.excluded == {} and fused.fields["last"].value == 1.5


def test_weighted_mean_and_weighted_median_follow_the_weights():
    values, weights = {"a": 10.0, "b": 20.0, "c": 40.0}, {"a": 1.0, "b": 1.0, "c": 2.0}
    mean = get_strategy("weighted_mean").fuse(candidates(values, weights), ["last"], {})
    assert mean.fields["last"].value == pytest.approx((10 + 20 + 80) / 4)
    median = get_strategy("weighted_median").fuse(candidates(values, weights), ["last"], {})
    assert median.fields["last"].value == weighted_median([10, 20, 40], [1, 1, 2]) == 30.0  # half the weight each side


def test_majority_counts_numbers_within_the_tolerance_as_one_vote_and_needs_a_majority():
    strategy = get_strategy("majority")
    options = strategy.parse_options({"tolerance": 0.001})
    fused = strategy.fuse(candidates({"a": 100.0, "b": 100.05, "c": 105.0}), ["last"], options)
    assert fused.error == "" and set(fused.excluded) == {"c"}
    assert fused.fields["last"].value == pytest.approx(100.025) and fused.fields["last"].used == 2
    split = strategy.fuse(candidates({"a": 1.0, "b": 2.0, "c": 3.0, "d": 3.0, "e": 1.0}), ["last"], options)
    assert "no majority on last" in split.error


def test_majority_votes_on_text_fields_too():
    strategy = get_strategy("majority")
    rows = [Candidate(name, {"state": state}, 1.0, 100) for name, state in (("a", "up"), ("b", "up"), ("c", "down"))]
    fused = strategy.fuse(rows, ["state"], strategy.parse_options({}))
    assert fused.fields["state"].value == "up" and "outvoted" in fused.excluded["c"]


def test_priority_takes_the_highest_priority_valid_answer():
    rows = [Candidate("low", {"last": 1.0}, 1.0, 10), Candidate("high", {"last": 2.0}, 0.1, 200)]
    fused = get_strategy("priority").fuse(rows, ["last"], {})
    assert fused.fields["last"].value == 2.0 and "not needed" in fused.excluded["low"]


def test_options_are_checked_by_name_and_range():
    with pytest.raises(StrategyError) as error:
        get_strategy("median").parse_options({"treshold": 3})
    assert error.value.field == "options.treshold"
    with pytest.raises(StrategyError):
        get_strategy("median").parse_options({"threshold": -1})
    with pytest.raises(StrategyError) as error:
        get_strategy("nope")
    assert error.value.field == "strategy"


def test_another_strategy_registers_by_name():
    class Smallest(Strategy):
        name = "smallest"
        description = "the least value"
        options = {"offset": Option(0.0, -10.0, 10.0)}

        def fuse(self, rows, fields, options):  # type: ignore[no-untyped-def]
            fused = Fused()
            for field in fields:
                value = min(row.values[field] for row in rows) + options["offset"]
                fused.fields[field] = FieldResult(value, "min", len(rows))
            return fused

    register_strategy(Smallest())
    strategy = get_strategy("smallest")
    fused = strategy.fuse(candidates({"a": 3.0, "b": 1.0}), ["last"], strategy.parse_options({"offset": 1}))
    assert fused.fields["last"].value == 2.0


def test_modified_z_scores_match_the_textbook_formula():
    values = [1.0, 2.0, 3.0, 4.0, 100.0]
    median, mad = 3.0, statistics.median([2.0, 1.0, 0.0, 1.0, 97.0])
    expected = [abs(v - median) / (1.4826 * mad) for v in values]
    assert modified_z_scores(values) == pytest.approx(expected)
    assert math.isinf(modified_z_scores([1.0, 1.0, 1.0, 2.0])[3])
