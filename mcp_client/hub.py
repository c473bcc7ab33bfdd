"""The set of live connections of one process, keyed by server name, on one event loop.

The hub is deliberately loop-bound: every `ServerConnection` owner task, semaphore and SDK client belongs
to the loop the hub first ran on. Code on other threads/loops goes through `FleetRuntime` (runtime.py),
which owns a hub on a dedicated loop.

What the sessions observe leaves through the hub's `streams` (state changes, notifications, call outcomes), each
read by any number of bounded subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, TextIO

import anyio
from mcp import Client

from .backoff import BackoffPolicy
from .capabilities import DiscoveredCapabilities, fetch_capabilities
from .connect_gate import ConnectGate
from .deadlines import NO_CONTEXT, RequestContext
from .errors import ServerUnavailable
from .failures import describe_exception
from .in_flight import InFlightCalls
from .outbound import OutboundPolicy
from .results import Answer, ResourceReadResult, ToolCallResult
from .session import ServerConnection
from .state import ConnectionStatus
from .streams import SessionStreams
from .targets import ServerTarget
from .transports import build_client

logger = logging.getLogger(__name__)


class ConnectionHub:
    """Keeps one `ServerConnection` per registered server and routes calls to it by key."""

    def __init__(
        self,
        *,
        backoff: BackoffPolicy | None = None,
        errlog: TextIO | None = None,
        stop_timeout: float = 5.0,
        outbound: OutboundPolicy | None = None,
        connects_at_once: int = 32,
        connect_slot_seconds: float = 2.0,
    ) -> None:
        self.streams = SessionStreams()
        # Calls a person may cancel by correlation id (the REST API's), while they run.
        self.in_flight = InFlightCalls()
        self._gate_size = (connects_at_once, connect_slot_seconds)
        self._gate: ConnectGate | None = None  # made on the hub's loop, at bind time
        self._backoff = backoff
        self._errlog = errlog
        self._stop_timeout = stop_timeout
        self._outbound = outbound
        self._connections: dict[str, ServerConnection] = {}
        self._closing: list[ServerConnection] = []
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def connect_gate(self) -> ConnectGate | None:
        """The gate of this hub's connects (None until the hub first ran on its loop)."""
        return self._gate

    def bind_loop(self) -> None:
        """Bind the hub to the running loop on first use; refuse use from any other loop later."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._lock = asyncio.Lock()
            self._gate = ConnectGate(*self._gate_size)
        elif self._loop is not loop:
            raise RuntimeError(
                "ConnectionHub is bound to another event loop; use FleetRuntime.run()/arun() from other loops"
            )

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    @property
    def backoff(self) -> BackoffPolicy | None:
        return self._backoff

    # -- membership -----------------------------------------------------------------------------------

    async def ensure(self, target: ServerTarget) -> ServerConnection:
        """Start a connection for the target. Same target: no-op. Same key, other settings: restart."""
        self.bind_loop()
        assert self._lock is not None
        old: ServerConnection | None = None
        async with self._lock:
            if self._closed:
                raise RuntimeError("ConnectionHub is closed")
            current = self._connections.get(target.key)
            if current is not None and current.target == target and current.running:
                return current
            if current is not None:
                logger.info("MCP server %r: settings changed, restarting its connection", target.key)
                old = current
                self._closing.append(old)
            connection = ServerConnection(
                target,
                streams=self.streams,
                backoff=self._backoff,
                errlog=self._errlog,
                stop_timeout=self._stop_timeout,
                outbound=self._outbound,
                connect_gate=self._gate,
            )
            if old is not None:
                # The new session keeps the old one's resource subscriptions.
                await connection.subscribe_resources(old.subscriptions)
            self._connections[target.key] = connection
            connection.start()
        if old is not None:
            # Outside the lock: a slow stdio shutdown must not hold up every other server's changes.
            try:
                await old.stop()
            finally:
                self._closing.remove(old)
        return connection

    async def remove(self, key: str) -> bool:
        """Stop and forget a server: its client is exited and its stdio child gone on return."""
        self.bind_loop()
        assert self._lock is not None
        async with self._lock:
            connection = self._connections.pop(key, None)
            if connection is None:
                return False
            self._closing.append(connection)
        try:
            await connection.stop()
        finally:
            self._closing.remove(connection)
        return True

    async def sync(self, targets: list[ServerTarget]) -> None:
        """Make the running set exactly `targets` (ensure each, remove the others), all at once."""
        wanted = {target.key for target in targets}
        gone = [key for key in self._connections if key not in wanted]
        results = await asyncio.gather(
            *(self.remove(key) for key in gone), *(self.ensure(target) for target in targets), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.error("connection hub: syncing a server failed: %s", describe_exception(result))

    def reconnect_now(self, key: str) -> bool:
        """Cut the server's reconnect backoff short; True when it was waiting."""
        connection = self._connections.get(key)
        return connection.reconnect_now() if connection is not None else False

    # get(), keys() and statuses() only read snapshots, so they are safe from any thread; everything async must
    # run on the hub's loop.

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
            self._closing.extend(connections)  # still reachable by kill_children() while they stop
        try:
            if connections:
                await asyncio.gather(*(c.stop(timeout) for c in connections), return_exceptions=True)
        finally:
            for connection in connections:
                if connection in self._closing:
                    self._closing.remove(connection)

    def kill_children(self) -> int:
        """Emergency: SIGKILL every live stdio child's process group. Sync and callable from any thread
        (a shutdown path whose loop no longer runs); returns how many were killed."""
        connections = list(self._connections.values()) + list(self._closing)
        return sum(connection.kill_child() for connection in connections)

    def reopen(self) -> None:
        """Allow `ensure()` again after `close_all()` (tests, runtime restarts)."""
        self._closed = False

    # -- calls ----------------------------------------------------------------------------------------

    def connection(self, key: str) -> ServerConnection:
        self.bind_loop()
        connection = self._connections.get(key)
        if connection is None:
            raise ServerUnavailable(key, "not connected: the server is unknown, disabled or not started yet")
        return connection

    async def call_tool(
        self,
        key: str,
        name: str,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        context: RequestContext = NO_CONTEXT,
    ) -> Answer[ToolCallResult]:
        return await self.connection(key).call_tool(name, arguments, timeout, context)

    async def discover(
        self,
        key: str,
        wait: bool = True,
        timeout: float | None = None,  # noqa: ASYNC109
        context: RequestContext = NO_CONTEXT,
    ) -> Answer[DiscoveredCapabilities]:
        """Full discovery. With `wait`, a server still connecting gets up to its connect_timeout to come
        up; a server in backoff fails fast with ServerUnavailable either way."""
        connection = self.connection(key)
        if wait:
            await connection.wait_connected(connection.target.connect_timeout, fail_in_backoff=True)
        return await connection.discover(timeout, context)

    async def probe(
        self,
        key: str,
        timeout: float | None = None,  # noqa: ASYNC109
        context: RequestContext = NO_CONTEXT,
    ) -> Answer[float]:
        return await self.connection(key).probe(timeout, context)

    async def read_resource(
        self,
        key: str,
        uri: str,
        timeout: float | None = None,  # noqa: ASYNC109
        context: RequestContext = NO_CONTEXT,
    ) -> Answer[ResourceReadResult]:
        return await self.connection(key).read_resource(uri, timeout, context)

    async def subscribe_resources(self, key: str, uris: Iterable[str]) -> None:
        """Keep resources/updated notifications for these URIs coming (across reconnects)."""
        await self.connection(key).subscribe_resources(uris)

    async def unsubscribe_resources(self, key: str, uris: Iterable[str]) -> None:
        await self.connection(key).unsubscribe_resources(uris)

    async def wait_connected(
        self,
        key: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ConnectionStatus:
        return await self.connection(key).wait_connected(timeout)


@asynccontextmanager
async def open_client(
    target: ServerTarget, *, errlog: TextIO | None = None, outbound: OutboundPolicy | None = None
) -> AsyncIterator[Client]:
    """A short-lived connected `Client` for one target (one-off discovery in tests and benchmarks).

    Built by the same code as the fleet's sessions. A connect that fails or exceeds the target's
    connect_timeout raises ServerUnavailable with the reason; errors inside the block propagate unchanged.
    Use it within a single task, as the SDK requires.
    """
    client = build_client(target, errlog=errlog, outbound=outbound)
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


async def discover_once(
    target: ServerTarget, *, errlog: TextIO | None = None, outbound: OutboundPolicy | None = None
) -> DiscoveredCapabilities:
    """Connect, discover everything, disconnect. Bounded by connect_timeout + request_timeout. `outbound`: the
    address policy every TCP connect must pass (as the fleet's sessions do)."""
    async with open_client(target, errlog=errlog, outbound=outbound) as client:
        with anyio.fail_after(target.request_timeout):
            return await fetch_capabilities(client, limits=target.capability_limits)
