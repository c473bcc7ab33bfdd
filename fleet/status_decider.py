"""Who decides a server's status: the seam between what the supervisor observes and the status that is written.

The supervisor observes sessions (up, down with a reason), discoveries and, while nobody else does, liveness checks.
On its own it writes what it observes. When a decider takes over (the health monitor, which also checks every
server, keeps the samples and damps flapping), the supervisor hands every observation to it instead and stops its
own checks: one decider of status, never two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from registry.services import StatusTransition

SESSION = "session"  # a session came up (and was discovered) or went down
DISCOVERY = "discovery"  # connected, but listing its capabilities failed
CHECK = "check"  # the supervisor's own liveness check (only while no decider has taken over)


@dataclass(frozen=True)
class StatusObservation:
    server_id: int
    name: str
    status: str  # what the supervisor would write on its own
    reason: str
    source: str
    protocol_version: str | None = None
    error: str | None = None


class StatusDecider(Protocol):
    async def observe(self, observation: StatusObservation) -> StatusTransition | None:
        """Take an observation into account; return the transition written, if any. Runs on the fleet loop."""
        ...
