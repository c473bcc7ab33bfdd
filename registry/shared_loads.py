"""Loads that callers arriving together share: when a per-process cache entry expires under load, the twenty requests
that find it missing wait for ONE database read instead of making twenty (measured on the serving path at 20
callers: the server cache's reload ran once per caller at every expiry, most of the database work of a call).

A load belongs to the event loop that started it; a caller on another loop (a test's, a second server's) loads on
its own. A failed or cancelled load fails only its own caller's wait: the others load again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedLoads(Generic[K, V]):
    def __init__(self) -> None:
        self._pending: dict[tuple[int, K], asyncio.Future[V]] = {}

    async def load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        loop = asyncio.get_running_loop()
        slot = (id(loop), key)
        pending = self._pending.get(slot)
        if pending is not None and pending.get_loop() is loop:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # we were cancelled, not the load
            except Exception:
                pass  # the first caller's load failed: try our own
            return await load()
        future: asyncio.Future[V] = loop.create_future()
        self._pending[slot] = future
        try:
            value = await load()
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(value)
            return value
        finally:
            if self._pending.get(slot) is future:
                del self._pending[slot]
