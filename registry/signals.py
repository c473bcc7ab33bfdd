"""What the registry tells the floors above it, without knowing them (the pipeline turns these into events).

Sent after the change is committed, from whichever thread made it; receivers must not block.
- `server_status_changed`: name, status, status_reason, last_seen_at (datetime or None), protocol_version.
- `servers_seen`: seen, a {name: datetime} of servers that answered in the last batch of calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.dispatch import Signal

server_status_changed = Signal()
servers_seen = Signal()


def announce_status(
    *, name: str, status: str, status_reason: str, last_seen_at: datetime | None, protocol_version: str
) -> None:
    """Send `server_status_changed` once the current transaction (if any) commits."""

    def send() -> None:
        server_status_changed.send(
            sender=None,
            name=name,
            status=str(status),
            status_reason=status_reason or "",
            last_seen_at=last_seen_at,
            protocol_version=protocol_version or "",
        )

    transaction.on_commit(send)


def announce_seen(seen: dict[str, Any]) -> None:
    servers_seen.send(sender=None, seen=seen)
