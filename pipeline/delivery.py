"""Handing batches of events to the channel layer, on the loop that is allowed to touch it.

The in-memory channel layer's queues belong to the event loop that serves the sockets (uvicorn's): putting into
them from another thread loses wake-ups (a delivery once took 4.8 s). So the serve command binds that loop here
at start and every batch is handed to it with `run_coroutine_threadsafe`. Without a bound loop (a test that runs
its sockets on its own loop binds that one; channels_redis works from any loop) the batch is sent from the
caller's loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

EVENTS_GROUP = "pipeline.events"
BATCH_MESSAGE = "pipeline.batch"

_delivery_loop: asyncio.AbstractEventLoop | None = None


def bind_delivery_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    """Deliver on this loop from now on (the loop that owns the in-memory channel layer's queues)."""
    global _delivery_loop
    _delivery_loop = loop


async def _group_send(message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(EVENTS_GROUP, message)


async def deliver_batch(wire_events: list[list[Any]]) -> None:
    """Send one batch to every events socket (in every process, under channels_redis); waits for the hand-over."""
    message = {"type": BATCH_MESSAGE, "events": wire_events}
    loop = _delivery_loop
    if loop is not None and not loop.is_closed() and asyncio.get_running_loop() is not loop:
        future = asyncio.run_coroutine_threadsafe(_group_send(message), loop)
        await asyncio.wrap_future(future)
        return
    await _group_send(message)
