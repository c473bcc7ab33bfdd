"""The event bus: publish from anywhere, sequenced per stream, fanned out to bounded subscribers on one loop.

The bus knows no publisher. Anything publishes (`publish` from any thread or loop, never blocking; `publish_async`
from code that can wait a little for room); a pump task on the bus's loop takes what was published in batches,
has the store give each event its sequence number (an in-process counter on the embedded default, Redis when
REDIS_URL is set, so several processes never repeat a number), and offers each event to every subscription whose
filter wants it: each subscriber has the project's one bounded queue (`mcp_client.streams.Subscription`), with
the bus's policy: the pump waits `slow_wait_seconds` once for a full reader, then it lags and loses its oldest
events, counted per stream and reported to it as a `Gap` before its next batch.

Bounds: the ingest queue holds at most `ingest_limit` events; a `publish` that finds it full drops the event and
counts it per stream (`dropped_at_ingest`), because a publisher on another thread must never wait on this loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from mcp_client.streams import Subscription
from pipeline.events import Event, check_stream_name
from pipeline.filters import EventFilter
from pipeline.metrics import PipelineMetrics

logger = logging.getLogger(__name__)

DEFAULT_INGEST_LIMIT = 100_000
DEFAULT_BATCH = 1_000
DEFAULT_SLOW_WAIT_SECONDS = 0.05


class Sequencer(Protocol):
    async def prepare(self) -> None: ...

    async def sequence(self, batch: list[Event]) -> None: ...


class LocalSequencer:
    """Per-stream counters in this process, seeded from what the store already holds."""

    def __init__(self, seed: Callable[[], Any] | None = None) -> None:
        self._last: dict[str, int] = {}
        self._seed = seed

    async def prepare(self) -> None:
        if self._seed is not None:
            self._last.update(await self._seed())

    async def sequence(self, batch: list[Event]) -> None:
        last = self._last
        for event in batch:
            seq = last.get(event.stream, 0) + 1
            last[event.stream] = seq
            event.seq = seq

    def last_seqs(self) -> dict[str, int]:
        return dict(self._last)


class EventBus:
    def __init__(
        self,
        *,
        sequencer: Sequencer | None = None,
        metrics: PipelineMetrics | None = None,
        ingest_limit: int = DEFAULT_INGEST_LIMIT,
        batch_size: int = DEFAULT_BATCH,
        slow_wait_seconds: float = DEFAULT_SLOW_WAIT_SECONDS,
    ) -> None:
        self.sequencer: Sequencer = sequencer or LocalSequencer()
        self.metrics = metrics or PipelineMetrics()
        self.ingest_limit = ingest_limit
        self.batch_size = batch_size
        self.slow_wait_seconds = slow_wait_seconds
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pump_errors = 0
        self._ingest: deque[Event] = deque()
        self._signalled = False
        self._wake: asyncio.Event | None = None
        # Insertion-ordered: the order subscribers are offered events (and listed in stats).
        self._subscriptions: dict[Subscription[Event], EventFilter] = {}
        self._pump: asyncio.Task[None] | None = None
        self._ready = threading.Event()

    # -- life ------------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start pumping on the running loop (the bus's loop from now on)."""
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await self.sequencer.prepare()
        self._pump = self.loop.create_task(self._run(), name="pipeline-bus")
        self._ready.set()
        if self._ingest:
            self._wake.set()

    async def stop(self, drain_timeout: float = 2.0) -> None:
        """Deliver what was already published (for at most `drain_timeout`), then stop and end every subscription."""
        deadline = time.monotonic() + drain_timeout
        # A bounded drain at shutdown: polling is simpler than a wake-up per pumped batch.
        while self._ingest and time.monotonic() < deadline and self.running:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        for subscription in list(self._subscriptions):
            subscription.close()
        self.loop = None
        self._ready.clear()

    @property
    def running(self) -> bool:
        return self._pump is not None and not self._pump.done()

    # -- publishing ------------------------------------------------------------------------------------------------

    def publish(
        self, stream: str, kind: str, payload: dict[str, Any], *, server: str | None = None, at: float | None = None
    ) -> bool:
        """Queue an event for the bus; never blocks. False when the ingest queue was full (the event is dropped)."""
        check_stream_name(stream)
        event = Event(
            stream=stream, kind=kind, payload=payload, server=server, at=at if at is not None else time.time()
        )
        return self.publish_event(event)

    def publish_event(self, event: Event) -> bool:
        if len(self._ingest) >= self.ingest_limit:
            self.metrics.ingest_dropped[event.stream] += 1
            return False
        self._ingest.append(event)
        if not self._signalled:
            self._signalled = True
            self._wake_pump()
        return True

    async def publish_async(
        self,
        stream: str,
        kind: str,
        payload: dict[str, Any],
        *,
        server: str | None = None,
        wait_seconds: float = 1.0,
    ) -> bool:
        """The same, for code that may wait up to `wait_seconds` for room in the ingest queue before dropping."""
        deadline = time.monotonic() + wait_seconds
        # Rare (a full queue): polling is cheaper than a wake-up per pumped batch for everyone else.
        while len(self._ingest) >= self.ingest_limit and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return self.publish(stream, kind, payload, server=server)

    def _wake_pump(self) -> None:
        loop, wake = self.loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return  # not started: start() wakes the pump for what is queued
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    # -- subscribing (on the bus loop) -----------------------------------------------------------------------------

    def subscribe(
        self,
        streams: Iterable[str],
        *,
        name: str,
        servers: Iterable[str] = (),
        kinds: Iterable[str] = (),
        maxsize: int = 10_000,
    ) -> Subscription[Event]:
        """A reader of the events its filter wants, from now on. Read it on the bus loop (`next_batch`, `take`)."""
        subscription: Subscription[Event] = Subscription(
            name=name,
            maxsize=maxsize,
            source="bus",
            room_wait_seconds=self.slow_wait_seconds,
            gap_key=_stream_of,
            on_close=self._forget,
        )
        self._subscriptions[subscription] = EventFilter.of(streams, servers, kinds)
        return subscription

    def _forget(self, subscription: Subscription[Event]) -> None:
        self._subscriptions.pop(subscription, None)

    @property
    def subscriptions(self) -> list[Subscription[Event]]:
        return list(self._subscriptions)

    # -- the pump --------------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._signalled = False
            while self._ingest:
                try:
                    await self._pump_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # One bad batch (a store hiccup) must not end the bus: count it, log it, go on.
                    self.pump_errors += 1
                    logger.exception("pipeline bus: a batch could not be delivered")
                    await asyncio.sleep(0.1)
                # Let subscribers read between large batches.
                await asyncio.sleep(0)

    async def _pump_once(self) -> None:
        ingest = self._ingest
        batch = [ingest.popleft() for _ in range(min(self.batch_size, len(ingest)))]
        if not batch:
            return
        try:
            await self.sequencer.sequence(batch)
        except Exception:
            # Not sequenced means not delivered: put them back in front and let the caller back off.
            ingest.extendleft(reversed(batch))
            raise
        self.metrics.bus_batch.add(len(batch))
        published = self.metrics.published
        delivered = self.metrics.delivered
        subscriptions = tuple(self._subscriptions.items())
        for event in batch:
            published[event.stream] += 1
            for subscription, event_filter in subscriptions:
                if not event_filter.wants(event):
                    continue
                if subscription.full and not subscription.lagging:
                    await subscription.wait_for_room()
                subscription.put(event)
                delivered[event.stream] += 1

    def stats(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "ingest_depth": len(self._ingest),
            "ingest_capacity": self.ingest_limit,
            "pump_errors": self.pump_errors,
            "subscribers": [
                {"name": subscription.name, "streams": sorted(event_filter.streams), **subscription.stats()}
                for subscription, event_filter in self._subscriptions.items()
            ],
        }


def _stream_of(event: Event) -> str:
    return event.stream
