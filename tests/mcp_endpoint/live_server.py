"""The site's ASGI application served by a real uvicorn in a thread on a free 127.0.0.1 port, for tests that talk to
the MCP endpoint (or anything else) over real HTTP with real clients.

As `manage.py serve` runs it: uvicorn with `lifespan="off"`, and on the way out `application.stop()` on the
server's loop before uvicorn closes the connections (the MCP endpoint's sessions and their streams end there).
Signals are left alone (not the main thread). The thread's ORM use goes to the test database: use it under
`transactional_db` (or with the database unblocked for a module), so what the test writes is visible to the server.

    with serving() as base_url:
        ... Client(f"{base_url}/mcp/") ...
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator, Iterator
from typing import Any

import uvicorn

from exchange_fleet.launcher import free_port
from tests.waiting import wait_for


class _ThreadedServer(uvicorn.Server):
    """uvicorn without signal handlers (a thread cannot install them), stopping the MCP endpoint first."""

    def __init__(self, config: uvicorn.Config, application: Any) -> None:
        super().__init__(config)
        self._application = application

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def shutdown(self, sockets: Any = None) -> None:
        stop = getattr(self._application, "stop", None)
        if stop is not None:
            await stop()
        await super().shutdown(sockets)


@contextlib.contextmanager
def serving(application: Any = None, *, timeout: float = 15.0) -> Iterator[str]:
    """Serve `application` (default: orchestrator_site.asgi.application) until the block ends; yields the base URL."""
    if application is None:
        from orchestrator_site.asgi import application as site_application

        application = site_application
    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = _ThreadedServer(config, application)
    thread = threading.Thread(target=server.run, name=f"live-server-{port}", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), timeout=timeout, what="the live server to listen")
        assert server.started, "the live server did not start (see its log above)"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
        assert not thread.is_alive(), "the live server did not stop"
