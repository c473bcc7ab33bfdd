"""Absolute deadlines and the context a request carries through the layer.

A deadline is a point on the monotonic clock (the one asyncio loops use), so it means the same on every thread and
loop: a caller's budget is shared by its retries and failovers instead of each one starting a fresh timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() seconds

    @classmethod
    def within(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def cap(self, seconds: float) -> float:
        """The time a step may take: its own limit, or what is left of the deadline, whichever is less (>= 0)."""
        return max(0.0, min(seconds, self.remaining()))


@dataclass(frozen=True)
class RequestContext:
    """Who asked and under which budget: carried into the call's outcome so it can be traced and attributed."""

    deadline: Deadline | None = None
    correlation_id: str = ""
    caller: str = ""


NO_CONTEXT = RequestContext()
