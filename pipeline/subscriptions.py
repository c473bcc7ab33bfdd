"""A bus reader's bounded queue and its policy when the reader falls behind.

The policy, in order: while there is room, an event is queued. When the queue is full, the bus waits a bounded
time (`slow_wait_seconds`) for the reader to make room, once; if it does not, the reader is marked lagging and from
then on loses its oldest events at once (no more waiting, so a stalled reader costs the others one short wait, not
one per event), each loss counted per stream. The next time the reader takes a batch, a `Gap(stream, missed)`
comes first for every stream it lost events of. Memory is bounded by `maxsize` events per reader, always.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from pipeline.events import Event, Gap
from pipeline.filters import EventFilter


class BusSubscription:
    def __init__(self, *, name: str, event_filter: EventFilter, maxsize: int, on_close: Any = None) -> None:
        if maxsize < 1:
            raise ValueError("a subscription needs room for at least one event")
        self.name = name
        self.filter = event_filter
        self.maxsize = maxsize
        self.delivered = 0
        self.dropped = 0
        self.high_water = 0
        self.lagging = False
        self.waits = 0  # times the bus waited for this reader to make room
        self._items: deque[Event] = deque()
        self._missed: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._on_close = on_close

    # -- the bus's side (on the bus loop) ------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def put(self, event: Event) -> None:
        """Queue an event, dropping the oldest one if there is no room (the caller decided not to wait)."""
        if self._closed:
            return
        if len(self._items) >= self.maxsize:
            lost = self._items.popleft()
            self._missed[lost.stream] = self._missed.get(lost.stream, 0) + 1
            self.dropped += 1
            self.lagging = True
            self._room.clear()
        self._items.append(event)
        depth = len(self._items)
        if depth > self.high_water:
            self.high_water = depth
        if depth >= self.maxsize:
            self._room.clear()
        self._ready.set()

    async def wait_for_room(self, timeout: float) -> bool:  # noqa: ASYNC109 - the bounded wait is the policy
        if not self.full:
            return True
        self.waits += 1
        try:
            await asyncio.wait_for(self._room.wait(), timeout)
        except TimeoutError:
            return False
        return not self.full

    # -- the reader's side -----------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, limit: int) -> list[Event | Gap]:
        """Up to `limit` events, after a gap marker for each stream that lost events since the last take."""
        batch: list[Event | Gap] = [Gap(stream, missed) for stream, missed in self._missed.items()]
        self._missed.clear()
        items = self._items
        for _ in range(min(limit, len(items))):
            batch.append(items.popleft())
        self.delivered += len(batch)
        if not items:
            self._ready.clear()
        if len(items) < self.maxsize:
            self._room.set()
            if len(items) <= self.maxsize // 2:
                self.lagging = False
        return batch

    async def next_batch(self, limit: int = 1_000, linger: float = 0.0) -> list[Event | Gap]:
        """Wait for at least one event (or the end), then wait up to `linger` seconds more to fill the batch."""
        while not self._items and not self._missed:
            if self._closed:
                return []
            await self._ready.wait()
        if linger > 0 and len(self._items) < limit and not self._closed:
            await asyncio.sleep(linger)
        return self.take(limit)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        self._room.set()
        if self._on_close is not None:
            self._on_close(self)

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "streams": sorted(self.filter.streams),
            "depth": len(self._items),
            "capacity": self.maxsize,
            "high_water": self.high_water,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "lagging": self.lagging,
            "waits": self.waits,
        }
