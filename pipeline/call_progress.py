"""Tool calls' progress, as the servers report it, becomes `calls.progress` events on the bus.

Every tool call the fleet makes (the REST API and the server page's call form, fusion's fan-out, the coordinator's
balanced calls, workflow steps and transaction participants) asks the server for progress: the connection layer
passes the SDK a progress callback (mcp_client/progress.py), which bounds what the server sent and coalesces it to at
most 10 items a second per call, the last one always kept, onto the hub's `progress` stream. This reader, on the
fleet loop, publishes each one as a `calls.progress` event keyed by the call's correlation id; the bus never blocks,
so a slow audience never holds up a call.

Event payload: {correlation_id, server, tool, progress, total, message, caller}; the event's `at` is when the
progress reached the orchestrator. The message is the server's text (bounded): pages show it as text, never markup.
"""

from __future__ import annotations

import asyncio
import logging

from fleet import calls as fleet_calls
from fleet.background import Guard
from mcp_client.progress import CallProgress
from pipeline.bus import EventBus

logger = logging.getLogger(__name__)

CALLS_PROGRESS = "calls.progress"


def progress_payload(item: CallProgress) -> dict[str, object]:
    return {
        "correlation_id": item.correlation_id,
        "server": item.server,
        "tool": item.tool,
        "progress": item.progress,
        "total": item.total,
        "message": item.message,
        "caller": item.caller,
    }


class CallProgressEvents:
    """Reads the hub's progress stream (started and stopped by the pipeline, on the fleet loop)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.published = 0
        self._guard = Guard("call-progress")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        runtime = fleet_calls.running_runtime()
        if runtime is None or runtime.loop is not asyncio.get_running_loop():
            # A pipeline of its own (no fleet loop under it here): there are no calls to follow.
            logger.debug("call progress: no fleet loop runs this pipeline; calls.progress stays quiet")
            return
        subscription = fleet_calls.subscribe_progress(name="pipeline-call-progress")
        self._subscription = subscription
        self._task = self._guard.loop("progress", lambda: self._forward(subscription))

    async def _forward(self, subscription: fleet_calls.Subscription[CallProgress]) -> None:
        async for item in subscription:
            self.bus.publish(
                CALLS_PROGRESS, "progress", progress_payload(item), server=item.server, at=item.at.timestamp()
            )
            self.published += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        subscription = getattr(self, "_subscription", None)
        if subscription is not None:
            subscription.close()

    @property
    def loop_errors(self) -> int:
        return self._guard.errors
