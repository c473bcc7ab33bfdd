"""Flap detection as Nagios and Icinga do it: a server that keeps going down and coming back is "flapping", one
condition that lasts while the pattern does, rather than an outage and a recovery every cycle.

State changes between up (online, degraded) and down (offline, unhealthy) are counted over a sliding window; a
pending check (a failure inside the retry budget) is neither and changes nothing. Flapping starts at
`start_changes` in the window and, with hysteresis, stops only when the count has fallen to `stop_changes` or the
server has held one state for `stable_seconds`. Nagios weighs the last 21 checks; with checks every few seconds and
outages every minute that would never see the pattern, hence a window in time. Pure logic: the clock is an argument.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from registry.models import ServerStatus

UP = {ServerStatus.ONLINE, ServerStatus.DEGRADED}
DOWN = {ServerStatus.OFFLINE, ServerStatus.UNHEALTHY}
# Written into the status reason by the monitor; the down alert rule reads a flapping server from it (the monitor is
# the one decider of a status, alerting reads its decision).
FLAPPING_PREFIX = "flapping: "


@dataclass(frozen=True)
class FlapPolicy:
    window_seconds: float = 600.0
    start_changes: int = 6  # up/down changes in the window that make a server flapping (three outages)
    stop_changes: int = 2  # ... and that end it (hysteresis: well under the start)
    stable_seconds: float = 180.0  # one state held this long ends it too (three periods of a once-a-minute flap)
    # A flapping server is shown degraded, also while down: but a down spell this long is an outage, shown as such.
    down_limit_seconds: float = 60.0


@dataclass
class FlapDetector:
    changes: deque[float] = field(default_factory=deque)  # when the server changed between up and down
    up: bool | None = None  # None: not known yet
    since: float | None = None  # when the current up or down state began
    flapping: bool = False
    flapping_since: float | None = None
    changes_at_start: int = 0

    def observe(self, status: str, at: float, policy: FlapPolicy) -> bool:
        """Note the server's (undamped) status at `at` (monotonic seconds); whether it is flapping now."""
        up = True if status in UP else False if status in DOWN else None
        if up is not None and up != self.up:
            if self.up is not None:
                self.changes.append(at)
            self.up, self.since = up, at
        while self.changes and self.changes[0] <= at - policy.window_seconds:
            self.changes.popleft()
        count = len(self.changes)
        if not self.flapping and count >= policy.start_changes:
            self.flapping, self.flapping_since, self.changes_at_start = True, at, count
        elif self.flapping and (
            count <= policy.stop_changes or (self.since is not None and at - self.since >= policy.stable_seconds)
        ):
            # Stable again. The changes that made it flap are forgiven, or the next change would start it at once.
            self.flapping, self.flapping_since = False, None
            self.changes.clear()
        return self.flapping

    def down_for(self, at: float) -> float:
        """How long the server has been down (0 while up)."""
        return at - self.since if self.up is False and self.since is not None else 0.0

    def reason(self, policy: FlapPolicy) -> str:
        # Fixed while it flaps (a reason that changes is a write and an event): the count that started it.
        return f"{FLAPPING_PREFIX}{self.changes_at_start} up/down changes in {policy.window_seconds / 60:.0f} min"


def is_flapping_reason(reason: str) -> bool:
    return reason.startswith(FLAPPING_PREFIX)
