"""What the sessions tell the rest of the application: connection state changes, server notifications and call
outcomes, each as a stream that any number of subscribers read at their own pace.

Every subscriber has its own bounded queue. A publisher never waits: when a subscriber's queue is full its oldest
item is dropped and counted (`Subscription.dropped`), so one slow reader loses only its own items and memory stays
bounded whatever happens. Streams live on the fleet loop: publish and consume there (from another thread, go
through `FleetRuntime`).
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


class Subscription(Generic[T]):
    """One reader's bounded queue. Iterate it (`async for item in subscription`) or call `get()`; `close()` ends it."""

    def __init__(self, stream: Stream[T], maxsize: int, name: str, accept: Callable[[T], bool] | None) -> None:
        if maxsize < 1:
            raise ValueError("a subscription needs room for at least one item")
        self.name = name
        self.maxsize = maxsize
        self.dropped = 0
        self.delivered = 0
        self._stream = stream
        self._accept = accept
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def _offer(self, item: T) -> None:
        if self._closed or (self._accept is not None and not self._accept(item)):
            return
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                logger.warning(
                    "%s subscriber %r is too slow: %d item(s) dropped so far",
                    self._stream.name,
                    self.name,
                    self.dropped,
                )
        self._items.append(item)
        self._ready.set()

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def get_nowait(self) -> T | None:
        if not self._items:
            return None
        self.delivered += 1
        return self._items.popleft()

    def drain(self, limit: int | None = None) -> list[T]:
        """Everything queued now (up to `limit`), without waiting."""
        count = len(self._items) if limit is None else min(limit, len(self._items))
        items = [self._items.popleft() for _ in range(count)]
        self.delivered += len(items)
        return items

    async def get(self) -> T:
        """The next item; raises StopAsyncIteration once closed and empty."""
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        self.delivered += 1
        return self._items.popleft()

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - a bounded wait is the API
        """Wait until something is queued (or closed); False on timeout."""
        if self._items or self._closed:
            return True
        self._ready.clear()
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream._remove(self)
            self._ready.set()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self.get()

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Stream(Generic[T]):
    """Fan-out of one kind of item to every current subscriber."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.published = 0
        self._subscribers: list[Subscription[T]] = []

    def subscribe(
        self, *, name: str = "", maxsize: int = DEFAULT_QUEUE_SIZE, accept: Callable[[T], bool] | None = None
    ) -> Subscription[T]:
        """A new subscriber that sees everything published from now on (filtered by `accept`, if given)."""
        subscription = Subscription(self, maxsize, name or f"subscriber-{len(self._subscribers) + 1}", accept)
        self._subscribers.append(subscription)
        return subscription

    def publish(self, item: T) -> None:
        self.published += 1
        for subscription in list(self._subscribers):
            try:
                subscription._offer(item)
            except Exception:  # a broken filter must not stop delivery to the others
                logger.exception("%s subscriber %r failed to take an item", self.name, subscription.name)

    def _remove(self, subscription: Subscription[T]) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    @property
    def subscribers(self) -> list[Subscription[T]]:
        return list(self._subscribers)

    def stats(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "subscribers": [
                {"name": s.name, "depth": s.depth, "maxsize": s.maxsize, "dropped": s.dropped, "delivered": s.delivered}
                for s in self._subscribers
            ],
        }


class SessionStreams:
    """The three streams every hub publishes: states, notifications and outcomes."""

    def __init__(self) -> None:
        self.states: Stream[ConnectionStatus] = Stream("states")
        self.notifications: Stream[ServerNotification] = Stream("notifications")
        self.outcomes: Stream[CallOutcome] = Stream("outcomes")

    def stats(self) -> dict[str, Any]:
        return {stream.name: stream.stats() for stream in (self.states, self.notifications, self.outcomes)}
