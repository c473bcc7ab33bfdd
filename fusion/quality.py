"""Quality of a source's answer (a weight) and the trust it earns: pure arithmetic, no database.

weight = trust x health x latency x freshness, each in (0, 1]:
- trust: agreement with past consensus, an exponential moving average that relaxes to the prior over time;
- health: the registry status the health monitor decided;
- latency: 1 / (1 + latency / reference), so a source at the reference latency counts half;
- freshness: 1 / (1 + age / reference), by the answer's own timestamp (1 when it has none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

HEALTH_FACTORS = {
    "online": 1.0,
    "degraded": 0.6,
    "unknown": 0.7,
    "pending": 0.4,
    "maintenance": 0.3,
    "unhealthy": 0.2,
    "offline": 0.1,
}
MIN_TRUST, MAX_TRUST = 0.01, 1.0


@dataclass(frozen=True)
class Quality:
    trust: float
    health: float
    latency: float
    freshness: float

    @property
    def weight(self) -> float:
        return self.trust * self.health * self.latency * self.freshness

    def to_json(self) -> dict[str, float]:
        return {
            "weight": round(self.weight, 6),
            "trust": round(self.trust, 6),
            "health": self.health,
            "latency": round(self.latency, 6),
            "freshness": round(self.freshness, 6),
        }


def quality_of(trust: float, status: str, latency_ms: float | None, age_ms: float | None) -> Quality:
    latency_reference = settings.FUSION_LATENCY_REFERENCE_MS
    freshness_reference = settings.FUSION_FRESHNESS_REFERENCE_MS
    return Quality(
        trust=trust,
        health=HEALTH_FACTORS.get(status, 0.5),
        latency=1.0 / (1.0 + max(0.0, latency_ms or 0.0) / latency_reference),
        freshness=1.0 / (1.0 + max(0.0, age_ms or 0.0) / freshness_reference),
    )


def decayed_trust(score: float, updated_at: datetime | None, now: datetime) -> float:
    """The stored score relaxed toward the prior by the time since it was last learned (a half-life)."""
    prior = settings.FUSION_TRUST_PRIOR
    if updated_at is None:
        return prior
    hours = max(0.0, (now - updated_at).total_seconds() / 3600.0)
    keep = math.pow(0.5, hours / settings.FUSION_TRUST_HALF_LIFE_HOURS)
    return prior + (score - prior) * keep


def learned_trust(score: float, agreed: float) -> float:
    """One more observation of agreement (1 agreed, 0 did not) folded into the moving average."""
    rate = settings.FUSION_TRUST_LEARNING_RATE
    return min(MAX_TRUST, max(MIN_TRUST, score + rate * (agreed - score)))


def agreement(values: dict[str, object], fused: dict[str, object], tolerance_bps: float) -> tuple[float, str]:
    """1.0 when every fused field of the source is within `tolerance_bps` of the fused value (or equal, for
    non-numbers), else 0.0; and the largest deviation, for the explanation."""
    worst = 0.0
    for name, target in fused.items():
        value = values.get(name)
        if isinstance(target, int | float) and isinstance(value, int | float) and not isinstance(value, bool):
            scale = max(abs(float(target)), 1e-12)
            worst = max(worst, abs(float(value) - float(target)) / scale * 10_000.0)
        elif value != target:
            return 0.0, f"{name} differs"
    return (1.0 if worst <= tolerance_bps else 0.0), f"{worst:.2f} bps from the result"
