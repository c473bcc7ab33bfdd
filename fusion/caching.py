"""Fused answers in Django's cache (local memory by default, Redis when configured), the hit and miss counts, and
single flight: concurrent identical queries in this process share one fan-out."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.core.cache import cache

T = TypeVar("T")

COUNTERS = ("hits", "misses", "fan_outs", "shared")
_COUNTER_KEY = "fusion:stats:{}"


def count(name: str) -> None:
    """Counted in the cache itself, so with Redis every process adds to the same figures."""
    key = _COUNTER_KEY.format(name)
    cache.add(key, 0, timeout=None)
    try:
        cache.incr(key)
    except ValueError:  # evicted between add and incr (local memory under pressure)
        cache.set(key, 1, timeout=None)


def counters() -> dict[str, int]:
    found = cache.get_many([_COUNTER_KEY.format(name) for name in COUNTERS])
    return {name: int(found.get(_COUNTER_KEY.format(name), 0)) for name in COUNTERS}


def cached_answer(key: str) -> dict[str, Any] | None:
    answer = cache.get(key)
    count("hits" if answer is not None else "misses")
    return answer


def keep_answer(key: str, answer: dict[str, Any], ttl_seconds: float) -> None:
    """Only successful answers are kept: a failure is never served as one."""
    if ttl_seconds > 0:
        cache.set(key, answer, timeout=ttl_seconds)


class SingleFlight:
    """The first caller of a key does the work; callers that arrive while it runs wait for its result. Callers may
    be on different event loops (the API's, a sync caller's own), so the shared result is a thread-safe future."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, concurrent.futures.Future[Any]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """(the result, whether it was shared from another caller's work)."""
        with self._lock:
            future = self._running.get(key)
            leader = future is None
            if leader:
                future = concurrent.futures.Future()
                self._running[key] = future
        assert future is not None
        if not leader:
            return await asyncio.wrap_future(future), True
        try:
            result = await work()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            with self._lock:
                self._running.pop(key, None)


single_flight = SingleFlight()
