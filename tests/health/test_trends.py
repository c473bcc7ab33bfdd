"""Trends and predictions: noise is stable, a significant and material ramp is degrading and its crossing is
predicted with a labelled band, and nothing is told from too little data."""

from __future__ import annotations

import random

import pytest

from health import trends
from health.trends import (
    assess,
    fit,
    p_value,
    predict_crossing,
    significant,
    t_critical,
    t_two_sided_p,
    too_little_data,
    trend,
)


def test_the_t_distribution_matches_known_values():
    assert t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=1e-3)
    assert t_two_sided_p(1.96, 100_000) == pytest.approx(0.05, abs=1e-3)
    assert t_critical(5) == pytest.approx(2.571, abs=1e-3)


def every_ten_seconds(minutes: float) -> list[float]:
    return [10.0 * i for i in range(int(minutes * 6))]


def test_noise_is_called_stable_and_a_ramp_degrading():
    rng = random.Random(7)
    xs = every_ten_seconds(30)
    flat = trend(fit(xs, [50 + rng.gauss(0, 8) for _ in xs]))
    assert flat is not None and flat.direction == "stable" and not flat.significant
    assert flat.reason.startswith("stable: no significant slope (p = ")
    ramp = trend(fit(xs, [50 + 0.03 * x + rng.gauss(0, 8) for x in xs]))  # +108 ms/h on ~77 ms
    assert ramp is not None and ramp.direction == "degrading" and ramp.confidence > 0.999
    assert ramp.significant and ramp.material
    assert ramp.slope_per_hour == pytest.approx(108, rel=0.15)
    assert ramp.reason.startswith("rising 1") and "% of the level of" in ramp.reason and "p < 0.001" in ramp.reason
    falling = trend(fit(xs, [200 - 0.03 * x + rng.gauss(0, 8) for x in xs]))
    assert falling is not None and falling.direction == "improving" and falling.reason.startswith("falling ")
    assert trend(fit(xs[:5], [1, 2, 3, 4, 5])) is None  # too few points to fit


def test_a_significant_but_immaterial_slope_is_stable():
    rng = random.Random(11)
    xs = [float(i) for i in range(5_000)]
    tiny = trend(fit(xs, [100 + 0.0002 * x + rng.gauss(0, 0.5) for x in xs]))  # +0.7 ms/h on 100 ms
    assert tiny is not None and tiny.significant and tiny.confidence > 0.99
    assert tiny.direction == "stable" and not tiny.material
    assert "is real (p < 0.001) but small: under 10 % of the level" in tiny.reason
    # 30 % of a 4 ms level per hour, and significant, but under the absolute floor of 10 ms/h.
    xs = every_ten_seconds(30)
    small = trend(fit(xs, [4 + 1.2 * x / 3600 + rng.gauss(0, 0.05) for x in xs]))
    assert small is not None and small.significant and small.direction == "stable"
    assert trends.MATERIAL_FLOOR_PER_HOUR == 10.0


def test_one_slow_first_check_does_not_make_a_flat_server_improving():
    rng = random.Random(5)
    xs = every_ten_seconds(11)
    ys = [40.0] + [3.4 + rng.gauss(0, 0.2) for _ in xs[1:]]
    found, line = assess(xs, ys)
    assert found.direction == "stable" and line is not None


def test_nothing_is_told_from_too_little_data():
    xs = every_ten_seconds(2)  # two minutes of a steep ramp
    ys = [5 + 2.0 * x for x in xs]
    found, line = assess(xs, ys)
    assert found.direction is None and line is None and found.slope_per_hour is None
    assert found.reason == "too little data: 1 of 10 minutes, 12 checks"  # 110 s, rounded down
    assert too_little_data([0.0, 300.0, 700.0]) == "too little data: 3 of 10 checks"
    assert too_little_data([]) == "too little data: 0 of 10 minutes, 0 checks"
    assert too_little_data(every_ten_seconds(10)) == "too little data: 9 of 10 minutes, 60 checks"  # 590 s
    assert too_little_data([0.0, 30.0]) == "too little data: 0.5 of 10 minutes, 2 checks"
    assert too_little_data(every_ten_seconds(11)) == ""
    assert too_little_data(xs, min_window=60) == ""  # the minimum is a parameter (read at call time)
    found, line = assess(every_ten_seconds(12), [5 + 2.0 * x for x in every_ten_seconds(12)])
    assert found.direction == "degrading" and line is not None


def test_significant_says_whether_the_slope_is_more_than_noise():
    rng = random.Random(2)
    xs = every_ten_seconds(15)
    noise = fit(xs, [20 + rng.gauss(0, 3) for _ in xs])
    rise = fit(xs, [20 + 0.01 * x + rng.gauss(0, 3) for x in xs])
    assert not significant(noise) and p_value(noise) > 0.05
    assert significant(rise) and p_value(rise) < 0.001
    assert not significant(None)


def test_a_crossing_is_predicted_before_it_happens_with_a_band_around_it():
    rng = random.Random(3)
    xs = [float(i) for i in range(120)]
    line = fit(xs, [100 + 2.0 * x + rng.gauss(0, 10) for x in xs])
    prediction = predict_crossing(line, threshold=500, now=119, horizon=1_000)
    assert prediction is not None and prediction.band == pytest.approx(trends.PREDICTION_BAND) == 0.8
    assert prediction.earliest < prediction.at < prediction.latest
    assert prediction.at == pytest.approx(200, abs=15)  # the true line crosses 500 at x = 200
    wider = predict_crossing(line, threshold=500, now=119, horizon=1_000, alpha=0.05)
    assert wider is not None and wider.band == pytest.approx(0.95)
    assert wider.earliest < prediction.earliest and wider.latest > prediction.latest  # 95 % holds more than 80 %
    assert predict_crossing(line, threshold=500, now=119, horizon=50) is None  # beyond the horizon
    assert predict_crossing(fit(xs, [100 - 0.5 * x for x in xs]), threshold=500, now=119, horizon=1_000) is None
