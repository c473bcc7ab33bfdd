"""The set of live connections of one process, keyed by server key, on one event loop.

The hub is deliberately loop-bound: every `ServerConnection` owner task, semaphore and SDK client belongs
to the loop the hub first ran on. Code on other threads/loops goes through `FleetRuntime` (runtime.py),
which owns a hub on a dedicated loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, TextIO

import anyio
from mcp import Client

from .capabilities import DiscoveredCapabilities, fetch_capabilities
from .errors import ServerUnavailable
from .session import (
    BackoffPolicy,
    ConnectionStatus,
    OnCall,
    OnNotification,
    OnStateChange,
    ResourceReadResult,
    ServerConnection,
    ToolCallResult,
    describe_exception,
)
from .targets import ServerTarget
from .transports import build_client

logger = logging.getLogger(__name__)


class ConnectionHub:
    """Keeps one `ServerConnection` per registered server and routes calls to it by key."""

    def __init__(
        self,
        *,
        on_call: OnCall | None = None,
        on_state_change: OnStateChange | None = None,
        on_notification: OnNotification | None = None,
        backoff: BackoffPolicy | None = None,
        errlog: TextIO | None = None,
        stop_timeout: float = 5.0,
    ) -> None:
        self._on_call = on_call
        self._on_state_change = on_state_change
        self._on_notification = on_notification
        self._backoff = backoff
        self._errlog = errlog
        self._stop_timeout = stop_timeout
        self._connections: dict[str, ServerConnection] = {}
        self._closing: list[ServerConnection] = []
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def bind_loop(self) -> None:
        """Bind the hub to the running loop on first use; refuse use from any other loop later."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._lock = asyncio.Lock()
        elif self._loop is not loop:
            raise RuntimeError(
                "ConnectionHub is bound to another event loop; use FleetRuntime.run()/arun() from other loops"
            )

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    # -- membership -----------------------------------------------------------------------------------

    async def ensure(self, target: ServerTarget) -> ServerConnection:
        """Start a connection for the target. Same target: no-op. Same key, other settings: restart."""
        self.bind_loop()
        assert self._lock is not None
        async with self._lock:
            if self._closed:
                raise RuntimeError("ConnectionHub is closed")
            current = self._connections.get(target.key)
            if current is not None:
                if current.target == target and current.running:
                    return current
                logger.info("MCP server %r: settings changed, restarting its connection", target.key)
                del self._connections[target.key]
                await current.stop()
            connection = ServerConnection(
                target,
                on_call=self._on_call,
                on_state_change=self._on_state_change,
                on_notification=self._on_notification,
                backoff=self._backoff,
                errlog=self._errlog,
                stop_timeout=self._stop_timeout,
            )
            self._connections[target.key] = connection
            connection.start()
            return connection

    async def remove(self, key: str) -> bool:
        """Stop and forget a server: its client is exited and its stdio child gone on return."""
        self.bind_loop()
        assert self._lock is not None
        async with self._lock:
            connection = self._connections.pop(key, None)
            if connection is None:
                return False
            await connection.stop()
            return True

    async def sync(self, targets: list[ServerTarget]) -> None:
        """Make the running set exactly `targets` (ensure each, remove the others)."""
        wanted = {target.key for target in targets}
        for key in [key for key in self._connections if key not in wanted]:
            await self.remove(key)
        for target in targets:
            await self.ensure(target)

    # get(), keys() and statuses() only read snapshots, so they are safe from any thread (a supervisor thread
    # polls statuses() while the fleet loop mutates the table); everything async must run on the hub's loop.

    def get(self, key: str) -> ServerConnection | None:
        return self._connections.get(key)

    def keys(self) -> list[str]:
        return list(self._connections)

    def statuses(self) -> dict[str, ConnectionStatus]:
        # list() copies the items atomically under the GIL: no "dict changed size during iteration".
        return {key: connection.status() for key, connection in list(self._connections.items())}

    async def close_all(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Stop every connection (concurrently: each stdio shutdown may take seconds)."""
        if self._loop is None:
            self._closed = True
            return
        self.bind_loop()
        assert self._lock is not None
        async with self._lock:
            self._closed = True
            connections = list(self._connections.values())
            self._connections.clear()
            self._closing = connections  # still reachable by kill_children() while they stop
            try:
                if connections:
                    await asyncio.gather(*(c.stop(timeout) for c in connections), return_exceptions=True)
            finally:
                self._closing = []

    def kill_children(self) -> int:
        """Emergency: SIGKILL every live stdio child's process group. Sync and callable from any thread
        (a shutdown path whose loop no longer runs); returns how many were killed."""
        connections = list(self._connections.values()) + list(self._closing)
        return sum(connection.kill_child() for connection in connections)

    def reopen(self) -> None:
        """Allow `ensure()` again after `close_all()` (tests, runtime restarts)."""
        self._closed = False

    # -- calls ----------------------------------------------------------------------------------------

    def _connection(self, key: str) -> ServerConnection:
        self.bind_loop()
        connection = self._connections.get(key)
        if connection is None:
            raise ServerUnavailable(key, "not registered with the connection hub")
        return connection

    async def call_tool(
        self,
        key: str,
        name: str,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ToolCallResult:
        return await self._connection(key).call_tool(name, arguments, timeout)

    async def discover(
        self,
        key: str,
        wait: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> DiscoveredCapabilities:
        """Full discovery. With `wait`, a server still connecting gets up to its connect_timeout to come
        up; a server in backoff fails fast with ServerUnavailable either way."""
        connection = self._connection(key)
        if wait:
            await connection.wait_connected(connection.target.connect_timeout, fail_in_backoff=True)
        return await connection.discover(timeout)

    async def probe(
        self,
        key: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> float:
        return await self._connection(key).probe(timeout)

    async def read_resource(
        self,
        key: str,
        uri: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ResourceReadResult:
        return await self._connection(key).read_resource(uri, timeout)

    async def subscribe_resources(self, key: str, uris: Iterable[str]) -> None:
        """Keep resources/updated notifications for these URIs coming to on_notification (across reconnects)."""
        await self._connection(key).subscribe_resources(uris)

    async def unsubscribe_resources(self, key: str, uris: Iterable[str]) -> None:
        await self._connection(key).unsubscribe_resources(uris)

    async def wait_connected(
        self,
        key: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ConnectionStatus:
        return await self._connection(key).wait_connected(timeout)


@asynccontextmanager
async def open_client(target: ServerTarget, *, errlog: TextIO | None = None) -> AsyncIterator[Client]:
    """A short-lived connected `Client` for one target (command-line probes, one-off discovery).

    Built by the same code as the fleet's sessions. A connect that fails or exceeds the target's
    connect_timeout raises ServerUnavailable with the reason; errors inside the block propagate unchanged.
    Use it within a single task, as the SDK requires.
    """
    client = build_client(target, errlog=errlog)
    connected = False
    try:
        with anyio.CancelScope() as scope:
            # Same trick as the owner task: one scope around the Client, with a deadline only while connecting.
            scope.deadline = anyio.current_time() + target.connect_timeout
            async with client:
                scope.deadline = float("inf")
                connected = True
                yield client
    except (Exception, BaseExceptionGroup) as exc:  # noqa: B036 - the SDK raises groups at connect
        if connected:
            raise
        raise ServerUnavailable(target.key, f"connect failed: {describe_exception(exc)}") from exc
    if not connected:
        raise ServerUnavailable(target.key, f"connect timed out after {target.connect_timeout:g}s")


async def discover_once(target: ServerTarget, *, errlog: TextIO | None = None) -> DiscoveredCapabilities:
    """Connect, discover everything, disconnect. Bounded by connect_timeout + request_timeout."""
    async with open_client(target, errlog=errlog) as client:
        with anyio.fail_after(target.request_timeout):
            return await fetch_capabilities(client)
