"""The registry, observed: its signals become `fleet.status` and `fleet.seen` events on the bus.

The registry is the ground floor and knows nothing of the pipeline; it sends Django signals (registry.signals) and
these receivers publish. `pipeline.running.publish` never blocks, so a status write is never held up by its
audience.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline.running import publish

FLEET_STATUS = "fleet.status"
FLEET_SEEN = "fleet.seen"


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def on_status_changed(
    sender: Any,
    *,
    name: str,
    status: str,
    status_reason: str,
    last_seen_at: datetime | None,
    protocol_version: str,
    **_: Any,
) -> None:
    publish(
        FLEET_STATUS,
        "status",
        {
            "server": name,
            "status": status,
            "status_reason": status_reason,
            "last_seen_at": _iso(last_seen_at),
            "protocol_version": protocol_version,
        },
        server=name,
    )


def on_servers_seen(sender: Any, *, seen: dict[str, datetime], **_: Any) -> None:
    publish(FLEET_SEEN, "seen", {"servers": {name: _iso(at) for name, at in seen.items()}})


def connect() -> None:
    from registry.signals import server_status_changed, servers_seen

    server_status_changed.connect(on_status_changed, dispatch_uid="pipeline.fleet.status")
    servers_seen.connect(on_servers_seen, dispatch_uid="pipeline.fleet.seen")
