"""Trends and predictions: noise is stable, a ramp is degrading and its crossing is predicted with a band."""

from __future__ import annotations

import random

import pytest

from health.trends import fit, predict_crossing, t_critical, t_two_sided_p, trend


def test_the_t_distribution_matches_known_values():
    assert t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=1e-3)
    assert t_two_sided_p(1.96, 100_000) == pytest.approx(0.05, abs=1e-3)
    assert t_critical(5) == pytest.approx(2.571, abs=1e-3)


def test_noise_is_called_stable_and_a_ramp_degrading():
    rng = random.Random(7)
    xs = [float(i) for i in range(200)]
    flat = trend(fit(xs, [50 + rng.gauss(0, 8) for _ in xs]))
    assert flat is not None and flat.direction == "stable"
    ramp = trend(fit(xs, [50 + 0.3 * x + rng.gauss(0, 8) for x in xs]), units_per_hour=1.0)
    assert ramp is not None and ramp.direction == "degrading" and ramp.confidence > 0.999
    assert ramp.slope_per_hour == pytest.approx(0.3, rel=0.15)
    falling = trend(fit(xs, [200 - 0.3 * x + rng.gauss(0, 8) for x in xs]))
    assert falling is not None and falling.direction == "improving"
    assert trend(fit(xs[:5], [1, 2, 3, 4, 5])) is None  # too few points to say


def test_a_crossing_is_predicted_before_it_happens_with_a_band_around_it():
    rng = random.Random(3)
    xs = [float(i) for i in range(120)]
    line = fit(xs, [100 + 2.0 * x + rng.gauss(0, 10) for x in xs])
    prediction = predict_crossing(line, threshold=500, now=119, horizon=1_000)
    assert prediction is not None
    assert prediction.earliest < prediction.at < prediction.latest
    assert prediction.at == pytest.approx(200, abs=15)  # the true line crosses 500 at x = 200
    assert predict_crossing(line, threshold=500, now=119, horizon=50) is None  # beyond the horizon
    assert predict_crossing(fit(xs, [100 - 0.5 * x for x in xs]), threshold=500, now=119, horizon=1_000) is None


def test_a_significant_but_negligible_slope_is_stable():
    rng = random.Random(11)
    xs = [float(i) for i in range(5_000)]
    tiny = trend(fit(xs, [100 + 0.0002 * x + rng.gauss(0, 0.5) for x in xs]))  # +1 % over the window
    assert tiny is not None and tiny.confidence > 0.99 and tiny.direction == "stable"
