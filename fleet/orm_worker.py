"""Database work for code on the fleet loop: run in one dedicated thread, never on the loop itself.

The fleet loop must never block on I/O, and the ORM is synchronous. One thread (not a pool) keeps the writes of
the supervisor and the call recorder in order and gives SQLite a single writer. The thread keeps its database
connection between jobs (it does a few a second); a job that fails on the connection itself closes it, so the next
job reconnects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class OrmWorker:
    def __init__(self, name: str = "fleet-db") -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False

    @staticmethod
    def _job(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except (InterfaceError, OperationalError):
            connection.close()
            raise

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` in the database thread and await its result from the loop."""
        if self._closed:
            raise RuntimeError("the database worker is shut down")
        loop = asyncio.get_running_loop()
        return await asyncio.wrap_future(self._executor.submit(self._job, fn, *args, **kwargs), loop=loop)

    def shutdown(self, wait: bool = True) -> None:
        """Finish what is queued (with `wait`), then stop the thread."""
        self._closed = True
        if wait:
            # Looked up in the worker thread: `connection` is per thread.
            self._executor.submit(lambda: connection.close()).result()
        self._executor.shutdown(wait=wait)
