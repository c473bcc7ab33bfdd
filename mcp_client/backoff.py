"""How long to wait before reconnecting."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential reconnect delays with jitter: initial * factor**(n-1), +-jitter, capped at maximum.

    Errors that need a person (authorization refused, command not found) do not fix themselves in a second:
    they wait the maximum at once, so a misconfigured server does not hammer its endpoint or fork every second.
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2  # fraction: 0.2 means +-20 %, so fleets restarted together don't reconnect in lockstep
    stable_after: float = 10.0  # a session that lived this long resets the failure count

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("BackoffPolicy needs 0 < initial <= maximum and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("BackoffPolicy.jitter must be in [0, 1)")

    def delay(self, failures: int, rng: random.Random | None = None, *, needs_attention: bool = False) -> float:
        """Delay before the next attempt after `failures` consecutive failures (>= 1)."""
        base = (
            self.maximum if needs_attention else min(self.maximum, self.initial * self.factor ** max(0, failures - 1))
        )
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return min(self.maximum, base * (1 + spread))
