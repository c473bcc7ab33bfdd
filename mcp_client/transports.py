"""Building an SDK `Client` for a `ServerTarget` — the one place that knows about transports.

Both the long-lived owner task (session.py) and the one-shot helpers (hub.py `open_client`) build their
client here, so a server that works in a command-line probe works the same way in the fleet.

Every transport is wrapped so the layer learns when the session's read loop ends: the SDK's dispatcher
stops reading when a stdio server exits (EOF) or an HTTP transport tears down, but nothing is raised into
the task that owns the client, so an idle dead session would otherwise look "connected" until the next call.

Everything a server sends passes its connection's `InboundGuard` (limits.py) before the SDK parses it: stdio lines
through our own reader (`bounded_stdio_client`), HTTP bodies and events through `LimitingTransport`, so an answer over
MCP_MAX_MESSAGE_BYTES is refused while it streams in, never held whole; and the messages a server sends on its own are
rate-limited where the session reads them (`_GuardedReadStream`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, TextIO

import anyio
import anyio.lowlevel
import httpx2
import mcp_types as types
from httpx2._config import DEFAULT_MAX_EVENT_SIZE_BYTES
from mcp import Client, StdioServerParameters
from mcp.client import stdio as sdk_stdio
from mcp.client._transport import TransportStreams
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage
from mcp_types import Implementation

from .client_request_relay import ClientRequestRelay
from .client_requests import ClientRequestRecord, elicitation_policy
from .failures import HttpObservations
from .http_watch import WatchingTransport
from .limits import Frame, InboundGuard, LimitingTransport
from .oauth import session_auth
from .outbound import OutboundPolicy
from .targets import ServerTarget

logger = logging.getLogger(__name__)

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


class _GuardedReadStream:
    """Proxy for a transport's read stream: drops what the guard does not admit, and reports when the session stops
    reading.

    The SDK's JSONRPCDispatcher does `async for item in read_stream` and spawns a task for every notification it
    reads; a message dropped here costs no task, no typed parse and no handler. It leaves its `async with
    read_stream` block exactly when the session is over (EOF, transport teardown, or our own shutdown): a
    transport-independent death signal built only on the public stream protocol.
    """

    def __init__(self, inner: Any, on_closed: Callable[[], None] | None, admit: Callable[[object], bool]) -> None:
        self._inner = inner
        self._on_closed = on_closed
        self._admit = admit

    @property
    def last_context(self) -> Any:
        # The dispatcher reads this with getattr to run handlers in the sender's contextvars snapshot.
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        while True:
            item = await self._inner.receive()  # a checkpoint every time: a flood cannot hog the loop here
            if self._admit(item):
                return item

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._closed()

    def _closed(self) -> None:
        if self._on_closed is not None:
            self._on_closed()

    def __aiter__(self) -> _GuardedReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            # As the inner stream's own iteration does (a ClosedResourceError goes on: the dispatcher handles it).
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _GuardedReadStream:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            return await self._inner.__aexit__(exc_type, exc, tb)
        finally:
            self._closed()


# Connections beyond the requests in flight: the notification stream (GET or subscriptions/listen), a discovery.
_STREAM_CONNECTIONS = 4


@dataclass(frozen=True)
class HttpOptions:
    """How a session's HTTP client is built: the outbound address policy every connection must pass, and what the
    session wants to learn from its traffic (see http_watch.py)."""

    outbound: OutboundPolicy | None = None
    observations: HttpObservations | None = None
    on_stream_dropped: Callable[[str], None] | None = None
    guard: InboundGuard | None = None
    # The largest event an SSE stream may carry, when the SDK's parser has a lower bound of its own than our limit.
    event_limit: int | None = None
    # Requests the session lets run at once (the server's max_concurrency): the connection pool holds that many
    # connections, kept alive, plus the long-lived streams. httpx's default (100 connections, 20 kept alive) made a
    # burst of concurrent calls wait for the pool, and every call past the 20th open and close a TCP connection.
    concurrent_requests: int | None = None

    def client(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        """An httpx2 client for one session (also usable as the SDK's `httpx_client_factory`)."""
        limits = httpx2.Limits(max_connections=100, max_keepalive_connections=20)
        if self.concurrent_requests is not None:
            pool = self.concurrent_requests + _STREAM_CONNECTIONS
            limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool)
        inner: httpx2.AsyncBaseTransport = (
            self.outbound.transport(limits=limits)
            if self.outbound is not None
            else httpx2.AsyncHTTPTransport(limits=limits)
        )
        limited = LimitingTransport(inner, self.guard or InboundGuard("unnamed server"), event_limit=self.event_limit)
        transport = WatchingTransport(limited, self.observations or HttpObservations(), self.on_stream_dropped)
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, transport=transport)


def oauth_auth(target: ServerTarget) -> httpx2.Auth | None:
    """The MCP authorization flow for a server behind OAuth (mcp_client/oauth.py), kept across its sessions: its
    requests to the authorization server go through the session's client, so the outbound policy judges them too."""
    return session_auth(target.url, target.oauth) if target.oauth is not None else None


@asynccontextmanager
async def _http_transport(target: ServerTarget, options: HttpOptions) -> AsyncIterator[TransportStreams]:
    # We always pass our own httpx2 client (headers, connect timeout, address policy); the SDK does not close a
    # client it was given, so it is entered here and closed after the transport.
    timeout = httpx2.Timeout(target.connect_timeout, read=HTTP_STREAM_READ_TIMEOUT)
    # The SDK's own SSE event bound (1 MiB by default) would end the session on a larger event (a "stream failed"
    # error); ours replaces an oversized event first and counts at least as many bytes, so theirs is set to ours.
    max_event = options.guard.max_message_bytes if options.guard is not None else None
    async with (
        options.client(headers=target.headers_dict, timeout=timeout, auth=oauth_auth(target)) as http,
        streamable_http_client(target.url, http_client=http, max_sse_event_size=max_event) as streams,
    ):
        yield streams


@asynccontextmanager
async def bounded_stdio_client(
    server: StdioServerParameters, errlog: TextIO, guard: InboundGuard
) -> AsyncIterator[TransportStreams]:
    """The SDK's `stdio_client` with a reader that holds at most MCP_MAX_MESSAGE_BYTES of one line.

    The SDK's reader decodes stdout to text and re-joins its buffer with every 64 KiB read until a newline comes, so
    one 50 MB line is held whole (several times) and copied quadratically, and nothing in it can be bounded from
    outside. Spawning, the shutdown sequence (close stdin, wait, kill the process group) and the stdout drain are the
    SDK's own (private helpers of the pinned SDK, used as they are); only the reading of stdout is ours: bytes are
    split into lines by the guard's `Framer`, an oversized line becomes the "answer too large" error for the request
    it answers (its id is read from the line's first bytes), and the session goes on.
    """
    command = await sdk_stdio._get_executable_command(server.command)
    process = await sdk_stdio._create_platform_compatible_process(
        command=command,
        args=server.args,
        env=sdk_stdio.get_default_environment() | (server.env or {}),
        errlog=errlog,
        cwd=server.cwd,
    )
    # No awaits between the spawn and the task group (the SDK's rule: a cancellation there would leak the process).
    read_stream_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_stream_reader = anyio.create_memory_object_stream[SessionMessage](0)
    shutting_down = False
    writer_done = anyio.Event()

    def as_message(frame: Frame) -> SessionMessage | Exception | None:
        if isinstance(frame, bytes):
            if not frame or frame.isspace():
                return None
            try:
                text = frame.decode(server.encoding, errors=server.encoding_error_handler)
                return SessionMessage(types.jsonrpc_message_adapter.validate_json(text, by_name=False))
            except ValueError as exc:  # pydantic's ValidationError and UnicodeDecodeError are ValueErrors
                # Returned, not logged with a traceback per line: the session counts them (stream_errors).
                return exc
        return guard.refused_message(frame)

    async def stdout_reader() -> None:
        assert process.stdout, "Opened process is missing stdout"
        framer = guard.framer()
        try:
            async with read_stream_writer:
                try:
                    # One chunk at a time and every message delivered before the next read: no read-ahead while
                    # the session is busy (the pipe pushes back on the server).
                    async for chunk in process.stdout:
                        for frame in framer.feed(chunk):
                            item = as_message(frame)
                            if item is None:
                                continue
                            try:
                                await read_stream_writer.send(item)
                            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                                return
                        if framer.cut:
                            # A line without end: the session cannot go on reading this server; ending the stream
                            # makes the owner reconnect (the request already has its "too large" error). Closed
                            # before the drain below, which only ends when the shutdown closes the pipe.
                            await read_stream_writer.aclose()
                            logger.warning(
                                "MCP server %r: a line past %d bytes; ending the session",
                                guard.key,
                                guard.limits.discard_bytes,
                            )
                            return
                finally:
                    await sdk_stdio._drain_stdout(process)
        except anyio.ClosedResourceError:
            pass  # our own shutdown closed the stdout stream under the read
        except (anyio.BrokenResourceError, ConnectionError):
            if not shutting_down:
                logger.exception("Reading from the MCP server's stdout failed mid-session")

    async def stdin_writer() -> None:
        assert process.stdin, "Opened process is missing stdin"
        try:
            async with write_stream_reader:
                async for session_message in write_stream_reader:
                    json = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    data = (json + "\n").encode(encoding=server.encoding, errors=server.encoding_error_handler)
                    await process.stdin.send(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            # The server may still be alive: close the read stream so the session sees the connection end.
            await read_stream_writer.aclose()
        finally:
            writer_done.set()

    async def shutdown() -> None:
        # The SDK's sequence: unblock the reader into its drain, let the writer flush, stop the server.
        read_stream.close()
        write_stream.close()
        with anyio.move_on_after(sdk_stdio._WRITER_FLUSH_TIMEOUT) as flush_scope:
            await writer_done.wait()
        if flush_scope.cancelled_caught:
            await anyio.lowlevel.cancel_shielded_checkpoint()
        await sdk_stdio._stop_server_process(process)
        await sdk_stdio._aclose_all(read_stream, write_stream, read_stream_writer, write_stream_reader)
        await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stdout_reader)
        tg.start_soon(stdin_writer)
        try:
            yield read_stream, write_stream
        finally:
            shutting_down = True
            # Shutdown must finish even under the caller's cancellation, or the server would leak.
            with anyio.CancelScope(shield=True):
                await shutdown()
            tg.cancel_scope.cancel()
    await anyio.lowlevel.cancel_shielded_checkpoint()


def build_transport(
    target: ServerTarget,
    *,
    errlog: TextIO | None = None,
    extra_env: dict[str, str] | None = None,
    http: HttpOptions | None = None,
    guard: InboundGuard | None = None,
) -> AbstractAsyncContextManager[Any]:
    """The SDK transport (an async context manager yielding the stream pair) for a target.

    `extra_env` is added to a stdio child's environment (the layer tags each child with a session token).
    """
    guard = guard or InboundGuard(target.key, target.inbound_limits)
    http = replace(http or HttpOptions(), guard=guard, concurrent_requests=target.max_concurrency)
    if target.transport == "stdio":
        params = StdioServerParameters(
            command=target.command,
            args=list(target.args),
            env=target.stdio_environment() | (extra_env or {}),
            cwd=target.cwd,
            # A server printing invalid UTF-8 must surface as one bad message, not kill the reader.
            encoding_error_handler="replace",
        )
        return bounded_stdio_client(params, errlog or default_errlog(), guard)
    if target.transport == "sse":
        # The SDK's legacy SSE client keeps httpx2's 1 MiB event bound (not configurable there), and a larger event
        # ends its session: events are held to the smaller of the two, so ours refuses them first.
        http = replace(http, event_limit=DEFAULT_MAX_EVENT_SIZE_BYTES)
        return sse_client(
            target.url,
            headers=target.headers_dict or None,
            timeout=target.connect_timeout,
            sse_read_timeout=HTTP_STREAM_READ_TIMEOUT,
            httpx_client_factory=http.client,
            auth=oauth_auth(target),
        )
    return _http_transport(target, http)


@asynccontextmanager
async def _guarded(
    inner: AbstractAsyncContextManager[Any], guard: InboundGuard, on_closed: Callable[[], None] | None
) -> AsyncIterator[TransportStreams]:
    async with inner as (read_stream, write_stream):
        yield _GuardedReadStream(read_stream, on_closed, guard.admit), write_stream


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
    guard: InboundGuard | None = None,
    relay: ClientRequestRelay | None = None,
) -> Client:
    """A fresh, un-entered `Client` for the target (a Client cannot be re-entered: build one per session).

    - `read_timeout_seconds`: the SDK has no request timeout by default; a hung server would park a call
      forever. Per-call timeouts override it.
    - `cache=None`: the registry wants what the server says now; list-result caching belongs to callers.
    - `guard`: the connection's limits on what the server sends (one for this client alone, from the target's
      `inbound_limits`, if none is given).
    - `relay`: the connection's relay of server requests and log entries to the agent whose pass-through call is in
      flight (client_request_relay.py); it then answers elicitation, sampling and roots (declared) and logging.
    """
    guard = guard or InboundGuard(target.key, target.inbound_limits)
    http = HttpOptions(outbound=outbound, observations=http_observations, on_stream_dropped=on_stream_dropped)
    transport = _guarded(
        build_transport(target, errlog=errlog, extra_env=extra_env, http=http, guard=guard), guard, on_transport_closed
    )
    if relay is not None:
        return Client(
            transport,
            read_timeout_seconds=target.request_timeout,
            cache=None,
            message_handler=message_handler,
            client_info=CLIENT_INFO,
            mode=target.mode,
            elicitation_callback=relay.elicitation,
            sampling_callback=relay.sampling,
            list_roots_callback=relay.roots,
            logging_callback=relay.logging,
        )
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
