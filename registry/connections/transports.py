"""Building an SDK `Client` for a `ServerTarget` — the one place that knows about transports.

Both the long-lived owner task (session.py) and the one-shot helpers (hub.py `open_client`) build their
client here, so a server that works in a command-line probe works the same way in the fleet.

Every transport is wrapped so the layer learns when the session's read loop ends: the SDK's dispatcher
stops reading when a stdio server exits (EOF) or an HTTP transport tears down, but nothing is raised into
the task that owns the client, so an idle dead session would otherwise look "connected" until the next call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client._transport import TransportStreams
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import Implementation

from .client_requests import ClientRequestRecord, elicitation_policy
from .failures import HttpObservations
from .http_watch import WatchingTransport
from .outbound import OutboundPolicy
from .targets import ServerTarget

CLIENT_INFO = Implementation(name="mcp-orchestrator", version="0.1.0")

# HTTP read timeout for the transport's own streams (SSE GET, streamed POST responses). Request deadlines are
# enforced by the layer per request, so this only bounds a stream that goes silent; it must exceed any
# request timeout or it would cut long tool calls short.
HTTP_STREAM_READ_TIMEOUT = 300.0

MessageHandler = Callable[[IncomingMessage], Awaitable[None]]


def default_errlog() -> TextIO:
    """Where stdio servers' stderr goes: our stderr if it is a real file, else the original one.

    anyio hands the file descriptor to the child, so a replaced sys.stderr without fileno() (pytest's
    capture=sys, some WSGI servers) would make every spawn fail.
    """
    for stream in (sys.stderr, sys.__stderr__):
        if stream is None:
            continue
        try:
            stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        return stream
    return open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process, like sys.stderr


class _WatchedReadStream:
    """Proxy for a transport's read stream that reports when the session stops reading it.

    The SDK's JSONRPCDispatcher does `async with read_stream: async for item in read_stream`, and leaves that
    block exactly when the session is over (EOF, transport teardown, or our own shutdown) — a transport-
    independent death signal built only on the public stream protocol.
    """

    def __init__(self, inner: Any, on_closed: Callable[[], None]) -> None:
        self._inner = inner
        self._on_closed = on_closed

    @property
    def last_context(self) -> Any:
        # The dispatcher reads this with getattr to run handlers in the sender's contextvars snapshot.
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        return await self._inner.receive()

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._on_closed()

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> Any:
        return await self._inner.__anext__()

    async def __aenter__(self) -> _WatchedReadStream:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            return await self._inner.__aexit__(exc_type, exc, tb)
        finally:
            self._on_closed()


@dataclass(frozen=True)
class HttpOptions:
    """How a session's HTTP client is built: the outbound address policy every connection must pass, and what the
    session wants to learn from its traffic (see http_watch.py)."""

    outbound: OutboundPolicy | None = None
    observations: HttpObservations | None = None
    on_stream_dropped: Callable[[str], None] | None = None

    def client(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        """An httpx2 client for one session (also usable as the SDK's `httpx_client_factory`)."""
        inner: httpx2.AsyncBaseTransport = (
            self.outbound.transport() if self.outbound is not None else httpx2.AsyncHTTPTransport()
        )
        transport = WatchingTransport(inner, self.observations or HttpObservations(), self.on_stream_dropped)
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, transport=transport)


@asynccontextmanager
async def _http_transport(target: ServerTarget, options: HttpOptions) -> AsyncIterator[TransportStreams]:
    # We always pass our own httpx2 client (headers, connect timeout, address policy); the SDK does not close a
    # client it was given, so it is entered here and closed after the transport.
    timeout = httpx2.Timeout(target.connect_timeout, read=HTTP_STREAM_READ_TIMEOUT)
    async with (
        options.client(headers=target.headers_dict, timeout=timeout) as http,
        streamable_http_client(target.url, http_client=http) as streams,
    ):
        yield streams


def build_transport(
    target: ServerTarget,
    *,
    errlog: TextIO | None = None,
    extra_env: dict[str, str] | None = None,
    http: HttpOptions | None = None,
) -> AbstractAsyncContextManager[Any]:
    """The SDK transport (an async context manager yielding the stream pair) for a target.

    `extra_env` is added to a stdio child's environment (the layer tags each child with a session token).
    """
    http = http or HttpOptions()
    if target.transport == "stdio":
        params = StdioServerParameters(
            command=target.command,
            args=list(target.args),
            env=target.stdio_environment() | (extra_env or {}),
            cwd=target.cwd,
            # A server printing invalid UTF-8 must surface as one bad message, not kill the reader.
            encoding_error_handler="replace",
        )
        return stdio_client(params, errlog=errlog or default_errlog())
    if target.transport == "sse":
        return sse_client(
            target.url,
            headers=target.headers_dict or None,
            timeout=target.connect_timeout,
            sse_read_timeout=HTTP_STREAM_READ_TIMEOUT,
            httpx_client_factory=http.client,
        )
    return _http_transport(target, http)


@asynccontextmanager
async def _watched(
    inner: AbstractAsyncContextManager[Any], on_closed: Callable[[], None]
) -> AsyncIterator[TransportStreams]:
    async with inner as (read_stream, write_stream):
        yield _WatchedReadStream(read_stream, on_closed), write_stream


def build_client(
    target: ServerTarget,
    *,
    message_handler: MessageHandler | None = None,
    on_transport_closed: Callable[[], None] | None = None,
    errlog: TextIO | None = None,
    extra_env: dict[str, str] | None = None,
    outbound: OutboundPolicy | None = None,
    http_observations: HttpObservations | None = None,
    on_stream_dropped: Callable[[str], None] | None = None,
    on_client_request: Callable[[ClientRequestRecord], None] | None = None,
) -> Client:
    """A fresh, un-entered `Client` for the target (a Client cannot be re-entered: build one per session).

    - `read_timeout_seconds`: the SDK has no request timeout by default; a hung server would park a call
      forever. Per-call timeouts override it.
    - `cache=None`: the registry wants what the server says now; list-result caching belongs to callers.
    """
    http = HttpOptions(outbound=outbound, observations=http_observations, on_stream_dropped=on_stream_dropped)
    transport = build_transport(target, errlog=errlog, extra_env=extra_env, http=http)
    if on_transport_closed is not None:
        transport = _watched(transport, on_transport_closed)
    return Client(
        transport,
        read_timeout_seconds=target.request_timeout,
        cache=None,
        message_handler=message_handler,
        client_info=CLIENT_INFO,
        mode=target.mode,
        # Elicitation answered by policy; sampling and roots not offered (the SDK then refuses them cleanly).
        elicitation_callback=elicitation_policy(on_client_request),
    )
