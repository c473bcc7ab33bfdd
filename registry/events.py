"""Live fleet events for browsers: the group every dashboard socket joins and the one way to publish into it.

Event contracts (Channels group messages, so only JSON-safe values: a Redis layer msgpacks them):
    {"type": "fleet.status", "server": <name>, "status": <ServerStatus value>, "status_reason": <str>,
     "last_seen_at": <ISO 8601 str or None>, "protocol_version": <str>}
    {"type": "fleet.seen", "servers": {<name>: <ISO 8601 last seen>}}   (after each batch of call records)
`registry.consumers.FleetConsumer` forwards them to each browser unchanged.

Thread safety: the in-memory channel layer's queues belong to the event loop that serves the sockets (daphne's), and
touching them from another thread loses wake-ups (a delivery once took 4.8 s). So events are handed to that loop
(`bind_delivery_loop`, done by the serve command at start) with `run_coroutine_threadsafe`, from whichever thread
publishes. Without a bound loop (a management command, a test) the event is sent from the publisher's own loop (or a
private one from sync code), which is right for channels_redis and for an in-memory layer nobody listens to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

FLEET_GROUP = "fleet"
FLEET_STATUS_EVENT = "fleet.status"
FLEET_SEEN_EVENT = "fleet.seen"

_delivery_loop: asyncio.AbstractEventLoop | None = None


def bind_delivery_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Deliver events on this loop from now on (the loop that owns the channel layer's in-memory queues)."""
    global _delivery_loop
    _delivery_loop = loop


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def fleet_status_event(
    *, name: str, status: str, status_reason: str, last_seen_at: datetime | str | None, protocol_version: str
) -> dict[str, Any]:
    return {
        "type": FLEET_STATUS_EVENT,
        "server": name,
        "status": str(status),
        "status_reason": status_reason or "",
        "last_seen_at": _iso(last_seen_at),
        "protocol_version": protocol_version or "",
    }


def fleet_seen_event(seen: Mapping[str, datetime | str]) -> dict[str, Any]:
    return {"type": FLEET_SEEN_EVENT, "servers": {name: _iso(at) for name, at in seen.items()}}


async def _send(event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(FLEET_GROUP, event)


def _report(future: Any) -> None:
    exception = future.exception()
    if exception is not None:
        logger.warning("a fleet event could not be delivered: %s", exception)


def publish(event: dict[str, Any]) -> None:
    """Hand an event to every connected dashboard. Never blocks on the delivery; safe from any thread."""
    loop = _delivery_loop
    if loop is not None and not loop.is_closed():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(_send(event)).add_done_callback(_report)
        else:
            asyncio.run_coroutine_threadsafe(_send(event), loop).add_done_callback(_report)
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(_send)(event)
        return
    running.create_task(_send(event)).add_done_callback(_report)


async def publish_async(event: dict[str, Any]) -> None:
    """The same from async code: delivered on the bound loop if there is one, else awaited here."""
    loop = _delivery_loop
    if loop is not None and not loop.is_closed() and asyncio.get_running_loop() is not loop:
        publish(event)
        return
    await _send(event)
