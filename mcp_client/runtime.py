"""An event loop thread that owns the live MCP sessions.

Django code is a mix of sync views, management commands, the web server's loop and test loops. SDK clients are
bound to the loop (and task) that entered them, so the sessions live on one dedicated loop in a daemon
thread ("mcp-fleet"), and everybody else submits coroutines to it:

    runtime = FleetRuntime(ConnectionHub()).start()
    answer = runtime.run(runtime.hub.call_tool("echo-server", "echo", {"text": "hi"}))      # from sync code
    answer = await runtime.arun(runtime.hub.call_tool("echo-server", "echo", {"text": "hi"}))  # another loop

Above the connection layer, code uses the fleet API (fleet/calls.py) rather than this; the process's one runtime
belongs to the fleet application (fleet/application.py), which builds, starts and stops it.

Shutdown closes every client on that loop (so stdio children are stopped by the SDK, by their owner
tasks), then stops the loop. An `atexit` hook registered at start does it as a last resort.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .event_loops import new_event_loop
from .hub import ConnectionHub
from .loop_bridge import LoopBridge

logger = logging.getLogger(__name__)

T = TypeVar("T")

Submittable = Coroutine[Any, Any, T] | Callable[[ConnectionHub], Awaitable[T]]


class FleetRuntime:
    """Runs a `ConnectionHub` on its own event loop in a daemon thread."""

    def __init__(self, hub: ConnectionHub | None = None, *, thread_name: str = "mcp-fleet") -> None:
        self._hub = hub or ConnectionHub()
        self._thread_name = thread_name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._bridge: LoopBridge | None = None

    @property
    def hub(self) -> ConnectionHub:
        return self._hub

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("FleetRuntime is not started")
        return self._loop

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def started(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> FleetRuntime:
        """Start the loop thread (idempotent). Returns self for chaining."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("FleetRuntime was shut down; create a new one")
            if self._thread is not None:
                return self
            loop = new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                try:
                    loop.run_forever()
                finally:
                    # Let leftovers unwind before the loop closes. Children are killed first: a natively
                    # cancelled owner could otherwise wait forever on a live child's stdout.
                    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                    if pending:
                        self._hub.kill_children()
                    for task in pending:
                        task.cancel()
                    if pending:
                        loop.run_until_complete(asyncio.wait(pending, timeout=5.0))
                    with contextlib.suppress(Exception):
                        loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.close()
                    if self._bridge is not None:
                        self._bridge.close()

            thread = threading.Thread(target=serve, name=self._thread_name, daemon=True)
            thread.start()
            ready.wait()
            self._loop = loop
            self._thread = thread
            self._bridge = LoopBridge(loop)
            # Last resort: stdio children run in their own sessions and would outlive a program that never shuts
            # its runtime down. (shutdown() is idempotent, so the hook is harmless after a clean stop.)
            atexit.register(self.shutdown)
            # Bind the hub to the fleet loop now, so misuse from another loop fails loudly and early.
            asyncio.run_coroutine_threadsafe(_bind(self._hub), loop).result()
            return self

    def _on_fleet_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _coroutine(self, work: Submittable[T]) -> Coroutine[Any, Any, T]:
        if inspect.iscoroutine(work):
            return work
        if callable(work):
            hub = self._hub

            async def call() -> T:
                # Called here, on the fleet loop, so even a callable that touches the hub synchronously is safe.
                result = work(hub)
                return await result if inspect.isawaitable(result) else result  # type: ignore[return-value]

            return call()
        raise TypeError(f"expected a coroutine or a callable taking the hub, got {type(work).__name__}")

    def submit(self, work: Submittable[T]) -> concurrent.futures.Future[T]:
        """Schedule on the fleet loop; returns a concurrent Future (thread-safe)."""
        if self._loop is None or self._stopped:
            if inspect.iscoroutine(work):
                work.close()  # avoid "coroutine was never awaited"
            raise RuntimeError("FleetRuntime is not running")
        return asyncio.run_coroutine_threadsafe(self._coroutine(work), self._loop)

    def run(self, work: Submittable[T], timeout: float | None = None) -> T:
        """Run on the fleet loop and wait (sync code only). `work` is a coroutine or `fn(hub) -> awaitable`.

        On timeout the work is cancelled on the fleet loop and TimeoutError is raised.
        """
        if self._on_fleet_loop():
            if inspect.iscoroutine(work):
                work.close()
            raise RuntimeError("FleetRuntime.run() would deadlock on the fleet loop; await the coroutine instead")
        future = self.submit(work)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"fleet work did not finish within {timeout}s") from None

    async def arun(self, work: Submittable[T]) -> T:
        """Await work from any event loop. On the fleet loop itself it is simply awaited."""
        if self._on_fleet_loop():
            return await self._coroutine(work)
        if self._bridge is None or self._stopped:
            if inspect.iscoroutine(work):
                work.close()
            raise RuntimeError("FleetRuntime is not running")
        # Cancelling the awaiting task cancels the work on the fleet loop too.
        return await self._bridge.run(self._coroutine(work))

    def shutdown(self, timeout: float = 10.0) -> None:
        """Close all clients on the fleet loop, stop it, join the thread. Idempotent; safe from signal hooks.

        Called on the fleet loop itself (e.g. from a callback) it can only schedule the close.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            loop, thread = self._loop, self._thread
        atexit.unregister(self.shutdown)  # so a stopped runtime is not kept alive by the hook until the process ends
        if loop is None or thread is None or loop.is_closed():
            return
        if self._on_fleet_loop() or threading.current_thread() is thread:

            async def close_and_stop() -> None:
                try:
                    await self._hub.close_all()
                finally:
                    loop.stop()

            loop.create_task(close_and_stop())
            return
        try:
            asyncio.run_coroutine_threadsafe(self._hub.close_all(), loop).result(timeout)
        except concurrent.futures.TimeoutError:
            logger.warning("FleetRuntime: closing the MCP sessions took longer than %.1fs; killing", timeout)
            self._hub.kill_children()
        except Exception:
            logger.exception("FleetRuntime: closing the MCP sessions failed")
            self._hub.kill_children()
        with contextlib.suppress(RuntimeError):  # loop closed concurrently
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("FleetRuntime: loop thread did not stop within %.1fs", timeout)


async def _bind(hub: ConnectionHub) -> None:
    hub.bind_loop()
