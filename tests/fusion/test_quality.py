"""Quality weights and trust arithmetic: learning toward agreement, fading back to the prior."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fusion.quality import agreement, decayed_trust, learned_trust, quality_of


def test_trust_learns_toward_agreement_and_is_bounded(settings):
    settings.FUSION_TRUST_LEARNING_RATE = 0.5
    assert learned_trust(0.8, 1.0) == pytest.approx(0.9)
    assert learned_trust(0.8, 0.0) == pytest.approx(0.4)
    score = 0.8
    for _ in range(50):
        score = learned_trust(score, 0.0)
    assert score == pytest.approx(0.01)  # never zero: a source can always earn its way back


def test_trust_fades_back_to_the_prior_with_its_half_life(settings):
    settings.FUSION_TRUST_PRIOR, settings.FUSION_TRUST_HALF_LIFE_HOURS = 0.8, 24.0
    now = datetime(2026, 11, 29, tzinfo=UTC)
    assert decayed_trust(0.2, now, now) == pytest.approx(0.2)
    assert decayed_trust(0.2, now - timedelta(hours=24), now) == pytest.approx(0.5)  # half the way back
    assert decayed_trust(0.2, now - timedelta(days=30), now) == pytest.approx(0.8, abs=1e-6)
    assert decayed_trust(0.5, None, now) == 0.8


def test_a_weight_multiplies_trust_health_latency_and_freshness(settings):
    settings.FUSION_LATENCY_REFERENCE_MS, settings.FUSION_FRESHNESS_REFERENCE_MS = 500.0, 10_000.0
    quality = quality_of(0.8, "degraded", 500.0, 10_000.0)
    assert (quality.trust, quality.health, quality.latency, quality.freshness) == (0.8, 0.6, 0.5, 0.5)
    assert quality.weight == pytest.approx(0.8 * 0.6 * 0.25)
    assert quality_of(1.0, "online", None, None).weight == 1.0


def test_agreement_is_judged_in_basis_points_of_the_result():
    assert agreement({"bid": 100.05}, {"bid": 100.0}, tolerance_bps=10)[0] == 1.0  # 5 bps
    agreed, detail = agreement({"bid": 100.5}, {"bid": 100.0}, tolerance_bps=10)
    assert agreed == 0.0 and detail.startswith("50.00 bps")
    assert agreement({"state": "up"}, {"state": "down"}, tolerance_bps=10) == (0.0, "state differs")
