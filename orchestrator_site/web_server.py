"""The HTTP and WebSocket server of `manage.py serve`: uvicorn, on uvloop with the httptools parser where installed.

Measured against daphne (Twisted's HTTP parser on an asyncio reactor) on the serving-path benchmark, the same
token-authenticated tool call cost about 3 ms less per request and 20 callers got about twice the calls/s
(bench/serving_path.py).

Two things differ from uvicorn's own command line, both for the fleet that runs beside it:
- `on_ready(loop)` runs once the server listens, in a thread of its own (starting the fleet reads the database and
  waits, which the server's loop must not), given the server's loop: browser events are delivered on that loop,
  which owns the in-memory channel layer;
- a SIGINT/SIGTERM stops serving and returns from `run()`, so the caller closes the MCP sessions and child processes
  afterwards; uvicorn itself would raise the signal again after its shutdown, which kills the process before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn

from mcp_client.event_loops import loop_kind

logger = logging.getLogger(__name__)

# Open connections (browsers' WebSockets, keep-alive API clients) get this long to finish when we stop.
GRACEFUL_SHUTDOWN_SECONDS = 5


def _parser() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


class _Server(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        on_ready: Callable[[asyncio.AbstractEventLoop], None],
        on_stopping: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._on_stopping = on_stopping

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._on_ready, loop)

    async def shutdown(self, sockets: Any = None) -> None:
        # First what holds connections open on this loop (the MCP endpoint's sessions and their streams), so the
        # graceful wait below is not spent on streams that never end by themselves.
        if self._on_stopping is not None:
            try:
                await self._on_stopping()
            except Exception:
                logger.exception("web server: stopping the MCP endpoint failed")
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # As uvicorn's, without raising the captured signal again at the end: our caller shuts the fleet down next.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class WebServer:
    def __init__(
        self,
        application: Any,
        *,
        host: str,
        port: int,
        on_ready: Callable[[asyncio.AbstractEventLoop], None],
        on_stopping: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        config = uvicorn.Config(
            application,
            host=host,
            port=port,
            loop="uvloop" if loop_kind() == "uvloop" else "asyncio",
            http=_parser(),
            ws="auto",
            lifespan="off",  # Django answers no lifespan events; the fleet starts in on_ready instead
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        self._server = _Server(config, on_ready, on_stopping)

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM or `stop()`; returns once every connection is closed."""
        self._server.run()

    def stop(self) -> None:
        """Stop serving (from any thread): the server's loop sees it within a tenth of a second."""
        self._server.should_exit = True
