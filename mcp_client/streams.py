"""Bounded subscriptions, and the session streams built on them.

`Subscription` is the one bounded queue of the project: every reader of a session stream here and every reader of
the pipeline's bus has one. Its policy when the reader falls behind, in order:
- while there is room, an item is queued;
- when the queue is full and the publisher may wait (`room_wait_seconds` > 0, the bus's pump), it waits that long
  for the reader to make room, once; if the reader does not, it is marked lagging and from then on loses its
  oldest items at once (no more waiting, so a stalled reader costs the others one short wait, not one per item);
  a publisher that never waits (a session stream: `room_wait_seconds` 0) drops at once;
- every lost item is counted (`dropped`, in `stats()`), and with `gap_key` also per key (the bus: per event
  stream): the next `take` starts with a `Gap(key, missed)` for each key that lost items, so the reader knows.
Memory is bounded by `maxsize` items per reader, always. A subscription lives on one loop: publish and read there.

The session streams (connection state changes, server notifications, call outcomes) fan each item out to any
number of such subscribers; a publisher never waits there, so one slow reader loses only its own items. Streams
live on the fleet loop: publish and consume there (from another thread, go through `FleetRuntime`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from .outcomes import CallOutcome
from .progress import CallProgress
from .state import ConnectionStatus

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_QUEUE_SIZE = 1_000


@dataclass(frozen=True)
class ServerNotification:
    """A notification a server sent: `notifications/resources/updated` with {"uri": ...},
    `notifications/tools/list_changed`, `notifications/message` (logging), ... whatever the protocol era."""

    server: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Gap:
    """Handed to a reader where items of `stream` (the bus: an event stream's name; whatever `gap_key` says)
    were dropped because the reader fell behind."""

    stream: str
    missed: int


class Subscription(Generic[T]):
    """One reader's bounded queue. Read it with `get()`, `async for`, `drain()`, or in batches with `take()` /
    `next_batch()` (the only readers that hand out `Gap` markers); `close()` ends it.

    Policies, fixed at creation: `accept` (a filter: items it refuses are not queued), `room_wait_seconds` (how
    long a waiting publisher gives a full reader, once, before it lags), `gap_key` (count drops per key and report
    them as gaps). Drops are always counted; `source` names the publisher in the warning a slow reader gets.
    """

    def __init__(
        self,
        *,
        name: str,
        maxsize: int,
        source: str = "",
        accept: Callable[[T], bool] | None = None,
        room_wait_seconds: float = 0.0,
        gap_key: Callable[[T], str] | None = None,
        on_close: Callable[[Subscription[T]], None] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("a subscription needs room for at least one item")
        self.name = name
        self.maxsize = maxsize
        self.source = source
        self.room_wait_seconds = room_wait_seconds
        self.delivered = 0
        self.dropped = 0
        self.high_water = 0
        self.lagging = False
        self.waits = 0  # times a publisher waited for this reader to make room
        self._accept = accept
        self._gap_key = gap_key
        self._on_close = on_close
        self._items: deque[T] = deque()
        self._missed: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    # -- the publisher's side (on the subscription's loop) ---------------------------------------------------------

    @property
    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def put(self, item: T) -> None:
        """Queue an item the filter accepts, dropping the oldest one if there is no room (never waits)."""
        if self._closed or (self._accept is not None and not self._accept(item)):
            return
        items = self._items
        if len(items) >= self.maxsize:
            self._drop_oldest()
        items.append(item)
        depth = len(items)
        if depth > self.high_water:
            self.high_water = depth
        if depth >= self.maxsize:
            self._room.clear()
        self._ready.set()

    async def wait_for_room(self) -> bool:
        """For a publisher that may wait: give a full reader `room_wait_seconds` to make room. False if it did not
        (the next `put` drops its oldest item and it lags; a lagging reader is not waited for again)."""
        if not self.full:
            return True
        if self.lagging or self.room_wait_seconds <= 0 or self._closed:
            return False
        self.waits += 1
        try:
            await asyncio.wait_for(self._room.wait(), self.room_wait_seconds)
        except TimeoutError:
            return False
        return not self.full

    def _drop_oldest(self) -> None:
        lost = self._items.popleft()
        self.dropped += 1
        self.lagging = True
        if self._gap_key is not None:
            key = self._gap_key(lost)
            self._missed[key] = self._missed.get(key, 0) + 1
        if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
            logger.warning(
                "%s subscriber %r is too slow: %d item(s) dropped so far", self.source, self.name, self.dropped
            )

    # -- the reader's side -----------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def _taken(self, count: int) -> None:
        self.delivered += count
        items = self._items
        if not items and not self._missed:
            self._ready.clear()
        if len(items) < self.maxsize:
            self._room.set()
            if len(items) <= self.maxsize // 2:
                self.lagging = False

    def get_nowait(self) -> T | None:
        if not self._items:
            return None
        item = self._items.popleft()
        self._taken(1)
        return item

    def drain(self, limit: int | None = None) -> list[T]:
        """Everything queued now (up to `limit`), without waiting and without gap markers."""
        items = self._items
        count = len(items) if limit is None else min(limit, len(items))
        taken = [items.popleft() for _ in range(count)]
        self._taken(count)
        return taken

    def take(self, limit: int) -> list[T | Gap]:
        """Up to `limit` items, after a gap marker for each key that lost items since the last take."""
        batch: list[T | Gap] = [Gap(key, missed) for key, missed in self._missed.items()]
        self._missed.clear()
        items = self._items
        count = min(limit, len(items))
        append, popleft = batch.append, items.popleft
        for _ in range(count):
            append(popleft())
        self._taken(count)
        return batch

    async def _until_ready(self) -> None:
        # Cleared only while there is nothing to read, so a set flag never means a busy loop.
        if not self._items and not self._missed and not self._closed:
            self._ready.clear()
        await self._ready.wait()

    async def get(self) -> T:
        """The next item; raises StopAsyncIteration once closed and empty."""
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            await self._until_ready()
        item = self._items.popleft()
        self._taken(1)
        return item

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - a bounded wait is the API
        """Wait until something is queued (or closed); False on timeout."""
        if self._items or self._closed:
            return True
        try:
            await asyncio.wait_for(self._until_ready(), timeout)
        except TimeoutError:
            return False
        return True

    async def next_batch(self, limit: int = 1_000, linger: float = 0.0) -> list[T | Gap]:
        """Wait for at least one item (or the end), then wait up to `linger` seconds more to fill the batch."""
        while not self._items and not self._missed:
            if self._closed:
                return []
            await self._until_ready()
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
            "depth": len(self._items),
            "capacity": self.maxsize,
            "high_water": self.high_water,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "lagging": self.lagging,
            "waits": self.waits,
        }

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self.get()

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Stream(Generic[T]):
    """Fan-out of one kind of item to every current subscriber; the publisher never waits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.published = 0
        self._subscribers: list[Subscription[T]] = []

    def subscribe(
        self, *, name: str = "", maxsize: int = DEFAULT_QUEUE_SIZE, accept: Callable[[T], bool] | None = None
    ) -> Subscription[T]:
        """A new subscriber that sees everything published from now on (filtered by `accept`, if given)."""
        subscription = Subscription(
            name=name or f"subscriber-{len(self._subscribers) + 1}",
            maxsize=maxsize,
            source=self.name,
            accept=accept,
            on_close=self._remove,
        )
        self._subscribers.append(subscription)
        return subscription

    def publish(self, item: T) -> None:
        self.published += 1
        for subscription in list(self._subscribers):
            try:
                subscription.put(item)
            except Exception:  # a broken filter must not stop delivery to the others
                logger.exception("%s subscriber %r failed to take an item", self.name, subscription.name)

    def _remove(self, subscription: Subscription[T]) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    @property
    def subscribers(self) -> list[Subscription[T]]:
        return list(self._subscribers)

    def stats(self) -> dict[str, Any]:
        return {"published": self.published, "subscribers": [s.stats() for s in self._subscribers]}


class SessionStreams:
    """The streams every hub publishes: states, notifications, outcomes and tool calls' progress (progress.py)."""

    def __init__(self) -> None:
        self.states: Stream[ConnectionStatus] = Stream("states")
        self.notifications: Stream[ServerNotification] = Stream("notifications")
        self.outcomes: Stream[CallOutcome] = Stream("outcomes")
        self.progress: Stream[CallProgress] = Stream("progress")

    def stats(self) -> dict[str, Any]:
        streams = (self.states, self.notifications, self.outcomes, self.progress)
        return {stream.name: stream.stats() for stream in streams}
