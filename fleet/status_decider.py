"""The seam between what the supervisor observes and the status that is written.

The supervisor observes sessions (up, down with a reason) and discoveries; it decides nothing. Every observation goes
to the one decider of a server's status, the health monitor, which also checks every server, keeps the samples,
damps flapping and writes the status through the registry's compare-and-set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from registry.services import StatusTransition

SESSION = "session"  # a session came up (and was discovered) or went down
DISCOVERY = "discovery"  # connected, but listing its capabilities failed


@dataclass(frozen=True)
class StatusObservation:
    server_id: int
    name: str
    status: str  # what was seen, as a status (online: up and discovered; offline: down; degraded: cannot list)
    reason: str
    source: str
    protocol_version: str | None = None
    error: str | None = None


class StatusDecider(Protocol):
    async def observe(self, observation: StatusObservation) -> StatusTransition | None:
        """Take an observation into account; return the transition written, if any. Runs on the fleet loop."""
        ...
