"""Live fleet status for browsers: the group every dashboard socket joins and the one way to publish into it.

Event contract (a Channels group message, so only JSON-safe values: a Redis layer msgpacks it):
    {"type": "fleet.status", "server": <name>, "status": <ServerStatus value>, "status_reason": <str>,
     "last_seen_at": <ISO 8601 str or None>, "protocol_version": <str>}
`registry.consumers.FleetConsumer.fleet_status` forwards it to each browser unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

FLEET_GROUP = "fleet"
FLEET_STATUS_EVENT = "fleet.status"


def fleet_status_event(
    *, name: str, status: str, status_reason: str, last_seen_at: datetime | str | None, protocol_version: str
) -> dict[str, Any]:
    if isinstance(last_seen_at, datetime):
        last_seen_at = last_seen_at.isoformat()
    return {
        "type": FLEET_STATUS_EVENT,
        "server": name,
        "status": str(status),
        "status_reason": status_reason or "",
        "last_seen_at": last_seen_at,
        "protocol_version": protocol_version or "",
    }


async def publish_fleet_status(
    *, name: str, status: str, status_reason: str, last_seen_at: datetime | str | None, protocol_version: str
) -> None:
    """Tell every connected dashboard that a server's status changed. A no-op when no channel layer is configured."""
    layer = get_channel_layer()
    if layer is None:
        return
    event = fleet_status_event(
        name=name,
        status=status,
        status_reason=status_reason,
        last_seen_at=last_seen_at,
        protocol_version=protocol_version,
    )
    await layer.group_send(FLEET_GROUP, event)


def publish_fleet_status_sync(
    *, name: str, status: str, status_reason: str, last_seen_at: datetime | str | None, protocol_version: str
) -> None:
    """The same for synchronous callers (commands, threads); never call it from inside a running event loop."""
    async_to_sync(publish_fleet_status)(
        name=name,
        status=status,
        status_reason=status_reason,
        last_seen_at=last_seen_at,
        protocol_version=protocol_version,
    )
