"""The path from the bus to the browsers: keep, then hand over.

One bus subscriber takes everything in batches (up to `batch_size` events, lingering `linger_seconds` to fill a
batch), has the store keep the batch (the database: written by the store's thread; Redis: already kept when the
bus sequenced it), then hands it to the channel layer, which gives it to every events socket (in every process,
under channels_redis). Keeping before handing over means a browser never sees an event that a reconnect could not
replay: the history and the live feed have no hole between them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipeline.bus import EventBus
from pipeline.delivery import deliver_batch
from pipeline.events import Event, Gap

logger = logging.getLogger(__name__)


class Forwarder:
    def __init__(
        self,
        bus: EventBus,
        store: Any,
        *,
        batch_size: int = 500,
        linger_seconds: float = 0.01,
        queue_size: int = 50_000,
    ) -> None:
        self.bus = bus
        self.store = store
        self.batch_size = batch_size
        self.linger_seconds = linger_seconds
        self.subscription = bus.subscribe(["*"], name="forwarder", maxsize=queue_size)
        self.batches = 0
        self.failures = 0
        self.missed = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pipeline-forwarder")

    async def stop(self) -> None:
        # What is already queued is kept and handed over before the end (bounded by the caller's patience).
        self.subscription.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 3.0)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        metrics = self.bus.metrics
        while True:
            items = await self.subscription.next_batch(self.batch_size, linger=self.linger_seconds)
            if not items:
                if self.subscription.closed:
                    return
                continue
            events: list[Event] = []
            for item in items:
                if isinstance(item, Gap):
                    # The sockets see the hole in the sequence numbers and tell their browsers; count it here.
                    self.missed += item.missed
                else:
                    events.append(item)
            try:
                await self.store.persist(events)
                metrics.persisted += len(events)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                metrics.persist_failures += 1
                logger.exception(
                    "pipeline: a batch of %d events could not be kept; it is delivered anyway", len(events)
                )
            try:
                await deliver_batch([event.as_wire() for event in events])
                self.batches += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                logger.exception("pipeline: a batch of %d events could not be handed to the sockets", len(events))

    def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "failures": self.failures, "missed": self.missed}
