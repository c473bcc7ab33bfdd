"""Background work on an event loop that never dies of an exception, shared by the supervisor, the pipeline's
producers and the health monitor: loops restarted with a backoff, one-off tasks whose failures are logged and
counted, and a queue of due times for periodic per-server work.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)


class Guard:
    """One component's background tasks: every failure is logged with the component's name and counted."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.errors = 0
        self.spawned: set[asyncio.Task[Any]] = set()

    def loop(self, name: str, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `body` until it returns; when it raises, log, wait (0.5 s doubling to 30 s) and run it again."""

        async def guard() -> None:
            pause = 0.5
            while True:
                try:
                    await body()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.errors += 1
                    logger.exception("%s: the %s loop failed; restarting it in %.1fs", self.component, name, pause)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 30.0)

        return asyncio.get_running_loop().create_task(guard(), name=f"{self.component}:{name}")

    def spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run one step in the background; its failure is logged and counted, never raised."""

        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                logger.exception("%s: a background step failed", self.component)

        task = asyncio.get_running_loop().create_task(guarded())
        self.spawned.add(task)
        task.add_done_callback(self.spawned.discard)
        return task

    async def cancel_spawned(self) -> None:
        tasks = list(self.spawned)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class DueQueue:
    """When each named item is next due (a heap with lazy deletion: rescheduling leaves the old entry stale)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._wakeup = asyncio.Event()

    def schedule(self, name: str, due: float) -> None:
        # The waiter sleeps until the earliest item: only an item due before that one needs to wake it (a check
        # rescheduling itself after every run would otherwise wake the loop once per check for nothing).
        earlier = not self._heap or due < self._heap[0][0]
        self._due[name] = due
        heapq.heappush(self._heap, (due, name))
        if earlier:
            self._wakeup.set()

    def forget(self, name: str) -> None:
        self._due.pop(name, None)

    def pop_due(self, now: float) -> list[str]:
        """The items due by `now`, each once; they are not due again until scheduled again."""
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            at, name = heapq.heappop(self._heap)
            if self._due.get(name) == at:
                del self._due[name]
                due.append(name)
        return due

    async def wait(self, now: float, idle: float, granularity: float = 0.01) -> None:
        """Until the next item is due (or `idle` seconds with nothing scheduled), or something is scheduled
        earlier; at least `granularity` seconds, so items falling due close together are taken in one round."""
        wait = self._heap[0][0] - now if self._heap else idle
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(granularity, wait)):
                await self._wakeup.wait()
