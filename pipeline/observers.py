"""The registry, observed: what it announces becomes `fleet.status` and `fleet.seen` events on the bus.

The registry is the ground floor and knows nothing of the pipeline; the fleet application connects a `FleetEvents`
for its pipeline when it starts the pipeline (registry.announcements). Announcements arrive on the thread or loop
that owns them (the fleet loop for what health decides and for the servers seen; a request thread for an operator's
edit); the bus's `publish` is thread-safe and never blocks, so a status write is never held up by its audience.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pipeline.bus import EventBus
from registry.announcements import RegistryListener, StatusTransition

FLEET_STATUS = "fleet.status"
FLEET_SEEN = "fleet.seen"


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class FleetEvents(RegistryListener):
    """Publishes what the registry announces on one pipeline's bus."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def status_changed(self, transition: StatusTransition) -> None:
        self.bus.publish(
            FLEET_STATUS,
            "status",
            {
                "server": transition.name,
                "status": str(transition.to_status),
                "status_reason": transition.reason or "",
                "last_seen_at": _iso(transition.last_seen_at),
                "protocol_version": transition.protocol_version or "",
            },
            server=transition.name,
        )

    def servers_seen(self, seen: Mapping[str, datetime]) -> None:
        self.bus.publish(FLEET_SEEN, "seen", {"servers": {name: _iso(at) for name, at in seen.items()}})
