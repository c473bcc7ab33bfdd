"""The path from the bus to the browsers: keep, then hand over.

One bus subscriber takes everything in batches (up to `batch_size` events), has the store keep the batch (the
database: written by the store's thread; Redis: already kept when the bus sequenced it), then hands it to the
channel layer, which gives it to every events socket (in every process, under channels_redis).

Leading-edge batching: after a quiet spell (no hand-over within `linger_seconds`) the first event is kept and handed
over at once, so a lone status change does not wait; while hand-overs follow each other closely (load), the next
batch lingers until `linger_seconds` after the previous one to fill up, so there are at most about
1/`linger_seconds` hand-overs a second however many events arrive, as with a plain linger.

Keeping before handing over means a browser never sees an event that a reconnect could not replay: a socket that
subscribes with `after` while an event is between the two steps reads it from the history, or receives it live
afterwards (and drops the duplicate); handed over first, it could have passed the socket before its subscription
and still be missing from the history the socket reads, a hole nobody reports. The write is one statement in the
store's thread (a no-op on Redis), a few milliseconds of the delay.
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
        # The loop time of the last hand-over; -inf: nothing handed over yet, so the first event goes at once.
        self._last_handover = float("-inf")
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
            items = await self._next_batch()
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
                self._last_handover = asyncio.get_running_loop().time()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                logger.exception("pipeline: a batch of %d events could not be handed to the sockets", len(events))

    async def _next_batch(self) -> list[Event | Gap]:
        """What is queued, at once after a quiet spell; under load, lingering to `linger_seconds` after the last
        hand-over to fill the batch."""
        items = await self.subscription.next_batch(self.batch_size)
        if not items or len(items) >= self.batch_size or self.subscription.closed:
            return items
        since_last = asyncio.get_running_loop().time() - self._last_handover
        if since_last < self.linger_seconds:
            await asyncio.sleep(self.linger_seconds - since_last)
            items.extend(self.subscription.take(self.batch_size - len(items)))
        return items

    def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "failures": self.failures, "missed": self.missed}
