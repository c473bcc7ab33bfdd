"""One live MCP session per server, owned by one task, with reconnects, timeouts and outcome records.

Ownership: the SDK `Client` must be exited by the task that entered it (anyio cancel scopes and task groups
are entered in `__aenter__`), so each `ServerConnection` runs one *owner task* that builds a Client, enters
it, parks until told to stop or until the session dies, exits it, backs off, and builds a new one.

Requests do not go through the owner task: callers on the same event loop await the connected client
directly (bounded by the per-server semaphore and a deadline). The SDK's dispatcher is built for concurrent
requests from many tasks — each waiter and each timeout lives in the caller's task, and a caller's
cancellation sends the server a courtesy cancel. A queue to the owner task adds a task switch, a future
and a task spawn per call: `python -m bench.connection_overhead --funnel` measured +0.04 to +0.26 ms per
call on one ~3 ms stdio session, against +0.01 to +0.08 ms for this whole layer over bare SDK calls on the
same session, for no extra safety: the owner's only job is the Client's lifecycle. Callers on other
threads or loops use `FleetRuntime`.

Death detection: a request that sees the session dead (Connection closed, transport errors, a
CancelledError the caller did not ask for) tells the owner at once; an idle session is watched through
its transport's read stream (see transports.py), so a stdio server that exits is noticed without a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, TextIO, TypeVar

import anyio
import httpx2
import mcp_types as types
from mcp import Client, MCPError
from mcp.client.session import IncomingMessage
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared.subscriptions import event_to_notification
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, ReadResourceResult
from pydantic import BaseModel, ValidationError

from . import processes
from .capabilities import DiscoveredCapabilities, Era, dump, era_of, fetch_capabilities
from .errors import (
    ConnectionLayerError,
    ConnectionLost,
    InvalidResponse,
    RequestTimedOut,
    ServerError,
    ServerUnavailable,
)
from .outcomes import CallOutcome, ErrorKind
from .targets import ServerTarget
from .transports import build_client

logger = logging.getLogger(__name__)

T = TypeVar("T")

ConnectionState = Literal["connecting", "connected", "backoff", "stopped"]

OnCall = Callable[[CallOutcome], None]
OnStateChange = Callable[[str, "ConnectionStatus"], None]
OnNotification = Callable[[str, str, dict[str, Any]], None]

# How long the owner gives a Client to exit before its cancel scope cuts the exit short. The stdio
# shutdown inside is shielded and bounded by the SDK (about 6 s worst case), so this only stops an HTTP
# session-termination DELETE to a hung server from wedging the owner.
EXIT_GRACE_SECONDS = 3.0


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential reconnect delays with jitter: initial * factor**(n-1), +-jitter, capped at maximum."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2  # fraction: 0.2 means +-20 %, so fleets restarted together don't reconnect in lockstep
    stable_after: float = 10.0  # a session that lived this long resets the failure count

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("BackoffPolicy needs 0 < initial <= maximum and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("BackoffPolicy.jitter must be in [0, 1)")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Delay before the next attempt after `failures` consecutive failures (>= 1)."""
        base = min(self.maximum, self.initial * self.factor ** max(0, failures - 1))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return min(self.maximum, base * (1 + spread))


@dataclass(frozen=True)
class ConnectionStatus:
    """A snapshot of one server's connection, safe to hand to other threads."""

    key: str
    transport: str
    state: ConnectionState
    attempts: int = 0  # connect attempts made since this connection was started
    consecutive_failures: int = 0  # failed attempts / short-lived sessions since the last stable session
    sessions: int = 0  # sessions established so far (1 + number of reconnects)
    last_error: str | None = None
    last_error_at: datetime | None = None
    protocol_version: str | None = None
    era: Era | None = None
    connected_since: datetime | None = None
    next_retry_at: datetime | None = None
    server_info: dict[str, Any] | None = None
    pid: int | None = None  # stdio child pid of the current session, when it could be identified
    in_flight: int = 0
    stream_errors: int = 0  # unparseable messages from the server (garbage on stdout...), this session

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("last_error_at", "connected_since", "next_retry_at"):
            if data[name] is not None:
                data[name] = data[name].isoformat()
        return data


@dataclass
class ToolCallResult:
    content: list[dict[str, Any]]
    structured_content: dict[str, Any] | None
    is_error: bool
    meta: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The text contents joined by newlines (what most tools mean by their answer)."""
        return "\n".join(item["text"] for item in self.content if item.get("type") == "text" and "text" in item)

    @classmethod
    def from_sdk(cls, result: CallToolResult) -> ToolCallResult:
        return cls(
            content=[dump(item) for item in result.content],
            structured_content=result.structured_content,
            is_error=bool(result.is_error),
            meta=result.meta,
        )


@dataclass
class ResourceReadResult:
    uri: str
    contents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(item["text"] for item in self.contents if "text" in item)

    @classmethod
    def from_sdk(cls, uri: str, result: ReadResourceResult) -> ResourceReadResult:
        return cls(uri=uri, contents=[dump(item) for item in result.contents])


class _ConnectTimeout(Exception):
    pass


def describe_exception(exc: BaseException) -> str:
    """One line for logs and status: leaf exceptions of a group, type names kept (they carry the meaning)."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = [describe_exception(inner) for inner in exc.exceptions]
        return "; ".join(dict.fromkeys(leaves)) or type(exc).__name__
    if isinstance(exc, MCPError):
        return f"MCPError {exc.code}: {exc.message}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ServerConnection:
    """The owner task and request gateway for one MCP server (lives on one event loop)."""

    def __init__(
        self,
        target: ServerTarget,
        *,
        on_call: OnCall | None = None,
        on_state_change: OnStateChange | None = None,
        on_notification: OnNotification | None = None,
        backoff: BackoffPolicy | None = None,
        errlog: TextIO | None = None,
        stop_timeout: float = 5.0,
    ) -> None:
        self._target = target
        self._on_call = on_call
        self._on_state_change = on_state_change
        self._on_notification = on_notification
        self._backoff = backoff or BackoffPolicy()
        self._errlog = errlog
        self._stop_timeout = stop_timeout
        self._semaphore = asyncio.Semaphore(target.max_concurrency)
        self._task: asyncio.Task[None] | None = None
        self._client: Client | None = None
        self._dead_reason: str | None = None
        self._wake = asyncio.Event()  # set to end the current phase: stop requested or session died
        self._changed = asyncio.Event()  # replaced on every state change; waiters wait on the old one
        self._scope: anyio.CancelScope | None = None
        self._connecting = False
        self._stop_requested = False
        self._status = ConnectionStatus(key=target.key, transport=target.transport, state="connecting")
        self._in_flight = 0
        self._stream_errors = 0
        self._connected_at: float | None = None
        self._subscriptions: set[str] = set()
        self._extras: list[asyncio.Task[None]] = []
        self._pid: int | None = None  # the current stdio child, for the safety nets

    # -- public state -----------------------------------------------------------------------------------

    @property
    def key(self) -> str:
        return self._target.key

    @property
    def target(self) -> ServerTarget:
        return self._target

    @property
    def state(self) -> ConnectionState:
        return self._status.state

    def status(self) -> ConnectionStatus:
        return replace(self._status, in_flight=self._in_flight, stream_errors=self._stream_errors)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the owner task on the running loop (idempotent)."""
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._own(), name=f"mcp-owner:{self.key}")

    async def stop(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Stop the owner task: the Client is exited by its own task, the stdio child is gone on return."""
        self._stop_requested = True
        self._wake.set()
        if self._connecting and self._scope is not None:
            # Abort a connect in progress. An anyio cancellation (not task.cancel()) so the SDK's shielded
            # stdio shutdown still runs to completion.
            self._scope.cancel()
        task = self._task
        if task is None:
            self._set_state("stopped")
            return
        if task.done():
            return
        timeout = self._stop_timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            await self._escalate_stop(task, timeout)

    async def _escalate_stop(self, task: asyncio.Task[None], waited: float) -> None:
        """The owner did not finish in time. Kill the child first: cancelling the owner natively would abort
        the SDK's shielded stdio shutdown, and its stdout drain would then wait forever on a live process."""
        logger.warning("MCP server %r: owner task did not stop within %.1fs; killing its server", self.key, waited)
        if self.kill_child():
            await asyncio.wait({task}, timeout=2.0)
        if not task.done():
            task.cancel()
            # asyncio.wait, not wait_for: wait_for would itself hang on a task that does not finish cancelling.
            await asyncio.wait({task}, timeout=2.0)
        if not task.done():
            logger.error("MCP server %r: owner task is stuck; abandoning it", self.key)

    def kill_child(self) -> bool:
        """Emergency stop: SIGKILL the current stdio child's process group. Sync, safe from any thread."""
        pid = self._pid
        if pid is None or not processes.is_alive(pid):
            return False
        processes.kill_group(pid)
        return True

    async def wait_connected(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
        *,
        fail_in_backoff: bool = False,
    ) -> ConnectionStatus:
        """Wait until the session is up. Raises ServerUnavailable on timeout, on stop, or — with
        `fail_in_backoff` — as soon as a connect attempt fails."""
        timeout = self._target.connect_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = self._status
            if status.state == "connected" and self._client is not None and self._dead_reason is None:
                return self.status()
            if status.state == "stopped" or self._stop_requested:
                raise ServerUnavailable(self.key, "connection stopped")
            if status.state == "backoff" and fail_in_backoff:
                raise ServerUnavailable(
                    self.key, f"in backoff after: {status.last_error or 'session ended'}", status.next_retry_at
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                reason = f"not connected after {timeout:g}s (state {status.state}"
                reason += f", last error: {status.last_error})" if status.last_error else ")"
                raise ServerUnavailable(self.key, reason, status.next_retry_at)
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    # -- the owner task ---------------------------------------------------------------------------------

    async def _own(self) -> None:
        failures = 0
        try:
            while not self._stop_requested:
                self._set_state("connecting", next_retry_at=None, attempts=self._status.attempts + 1)
                error: str | None = None
                self._connected_at = None
                try:
                    await self._run_session()
                except _ConnectTimeout as exc:
                    error = str(exc)
                except asyncio.CancelledError:
                    if self._stop_requested or _being_cancelled():
                        raise
                    # A cancellation nobody asked for: the HTTP transport's task group tearing down.
                    error = "transport cancelled the session"
                except (Exception, BaseExceptionGroup) as exc:  # noqa: B036 - the SDK raises groups of anything
                    if self._stop_requested and _only_cancellations(exc):
                        break
                    if isinstance(exc, BaseExceptionGroup) and _being_cancelled():
                        raise
                    error = describe_exception(exc)
                    if self._connected_at is None and _has_connection_closed(exc):
                        error = "the server closed the connection during the handshake (did it exit?)"
                if self._stop_requested:
                    break
                connected_at = self._connected_at  # set by _run_session once the handshake succeeded
                if error is None:
                    error = self._dead_reason or "session ended"
                lived = time.monotonic() - connected_at if connected_at is not None else 0.0
                if connected_at is not None and lived >= self._backoff.stable_after:
                    failures = 0
                failures += 1
                delay = self._backoff.delay(failures)
                logger.info("MCP server %r: %s; reconnecting in %.2fs", self.key, error, delay)
                self._set_state(
                    "backoff",
                    last_error=error,
                    last_error_at=_utcnow(),
                    consecutive_failures=failures,
                    next_retry_at=_utcnow() + timedelta(seconds=delay),
                    connected_since=None,
                    pid=None,
                )
                self._wake = asyncio.Event()
                if self._stop_requested:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            self._client = None
            self._set_state("stopped", next_retry_at=None, connected_since=None, pid=None)

    async def _run_session(self) -> None:
        """Connect, serve until stop or death, exit the Client (sets `_connected_at` once usable)."""
        target = self._target
        self._wake = asyncio.Event()
        self._dead_reason = None
        self._stream_errors = 0
        transport_closed = False

        def on_transport_closed() -> None:
            nonlocal transport_closed
            transport_closed = True
            self._session_died(client, "transport closed")

        stdio = target.transport == "stdio"
        token = uuid.uuid4().hex
        client = build_client(
            target,
            message_handler=self._on_message,
            on_transport_closed=on_transport_closed,
            errlog=self._errlog,
            extra_env={processes.SESSION_ENV: token} if stdio else None,
        )
        children_before = processes.child_pids() if stdio else set()
        pid: int | None = None
        connected_at: float | None = None
        extras: list[asyncio.Task[None]] = []
        try:
            with anyio.CancelScope() as scope:
                # One scope around the whole Client lifetime: a deadline while connecting (an anyio scope,
                # so a timed-out connect still runs the SDK's shielded cleanup), none while serving, and
                # a short one again while exiting.
                self._scope = scope
                scope.deadline = anyio.current_time() + target.connect_timeout
                self._connecting = True
                async with client:
                    self._connecting = False
                    scope.deadline = math.inf
                    connected_at = self._connected_at = time.monotonic()
                    if stdio:
                        pid = self._pid = processes.identify_child(children_before, token)
                    if transport_closed:  # died between the handshake and now: nobody was told yet
                        self._dead_reason = "transport closed right after connecting"
                    if not self._stop_requested and self._dead_reason is None:
                        self._client = client
                        info = client.server_info
                        self._set_state(
                            "connected",
                            protocol_version=client.protocol_version,
                            era=era_of(client.protocol_version),
                            server_info=dump(info) if info is not None else None,
                            connected_since=_utcnow(),
                            next_retry_at=None,
                            sessions=self._status.sessions + 1,
                            pid=pid,
                        )
                        logger.info(
                            "MCP server %r connected (%s, protocol %s)",
                            self.key,
                            target.describe(),
                            client.protocol_version,
                        )
                        extras = self._start_session_extras(client)
                        try:
                            await self._wake.wait()
                        finally:
                            for task in extras:
                                task.cancel()  # no await here: this may run under a cancellation
                    # Stop taking requests before the (possibly slow) exit.
                    self._client = None
                    if not self._stop_requested:
                        self._set_state("backoff", last_error=self._dead_reason, last_error_at=_utcnow())
                    scope.deadline = anyio.current_time() + EXIT_GRACE_SECONDS
            if scope.cancelled_caught and connected_at is None and not self._stop_requested:
                message = f"connect timed out after {target.connect_timeout:g}s"
                if self._stream_errors:
                    message += f" (the server sent {self._stream_errors} unparseable message(s))"
                raise _ConnectTimeout(message)
        finally:
            self._connecting = False
            self._scope = None
            self._client = None
            if extras:
                # Let the cancelled helpers unwind (return_exceptions: their errors are theirs; only our own
                # cancellation may propagate from here).
                await asyncio.gather(*extras, return_exceptions=True)
            self._pid = None
            if pid is not None:
                self._reap(pid)

    def _reap(self, pid: int) -> None:
        """Safety net: the SDK normally has the child dead by now; if not, kill its process group."""
        if processes.is_alive(pid) and pid in processes.child_pids():
            logger.warning("MCP server %r: stdio child %d survived its session; killing its group", self.key, pid)
            processes.kill_group(pid)

    def _session_died(self, client: Client | None, reason: str) -> None:
        """Called by requests and by the transport watcher: wake the owner to rebuild the session."""
        if client is None or client is not self._client or self._dead_reason is not None:
            return
        self._dead_reason = reason
        logger.info("MCP server %r: session lost (%s)", self.key, reason)
        self._wake.set()

    async def _on_message(self, message: IncomingMessage) -> None:
        """SDK message_handler: server notifications (handshake era) and transport-level faults."""
        if isinstance(message, Exception):
            # Unparseable output (garbage on stdout, a bad SSE event): the SDK drops it and keeps reading.
            self._stream_errors += 1
            logger.debug("MCP server %r sent an unparseable message: %s", self.key, describe_exception(message))
            return
        self._emit(message)

    def _emit(self, notification: Any) -> None:
        """Hand a server notification to the callback as (key, method, params dict), whatever the era."""
        if self._on_notification is None:
            return
        params = getattr(notification, "params", None)
        payload = dump(params) if isinstance(params, BaseModel) else {}
        try:
            self._on_notification(self.key, notification.method, payload)
        except Exception:
            logger.exception("on_notification callback failed for %r %s", self.key, notification.method)

    # -- notifications and resource subscriptions ---------------------------------------------------------

    @property
    def subscriptions(self) -> frozenset[str]:
        """Resource URIs this connection keeps subscribed (re-applied after every reconnect)."""
        return frozenset(self._subscriptions)

    async def subscribe_resources(self, uris: Iterable[str]) -> None:
        """Ask for resources/updated notifications for these URIs, now and after every reconnect.

        Handshake era: `resources/subscribe` per URI; updates arrive through the message handler.
        2026-07-28 era: the URIs join the session's `subscriptions/listen` stream (restarted with the new
        filter). Either way they reach `on_notification` as ("notifications/resources/updated", {"uri": ...}).
        """
        new = [uri for uri in dict.fromkeys(uris) if uri not in self._subscriptions]
        self._subscriptions.update(new)
        client = self._client
        if not new or client is None or self._dead_reason is not None:
            return  # applied when the next session comes up
        if era_of(client.protocol_version) == "handshake":
            for uri in new:
                await self.request("resources/subscribe", uri, partial(_send_subscribe, uri=uri, subscribe=True))
        else:
            self._restart_listener(client)

    async def unsubscribe_resources(self, uris: Iterable[str]) -> None:
        gone = [uri for uri in dict.fromkeys(uris) if uri in self._subscriptions]
        self._subscriptions.difference_update(gone)
        client = self._client
        if not gone or client is None or self._dead_reason is not None:
            return
        if era_of(client.protocol_version) == "handshake":
            for uri in gone:
                await self.request("resources/unsubscribe", uri, partial(_send_subscribe, uri=uri, subscribe=False))
        else:
            self._restart_listener(client)

    def _start_session_extras(self, client: Client) -> list[asyncio.Task[None]]:
        """Per-session helpers, run beside the owner and cancelled before the Client exits."""
        self._extras = []
        if era_of(client.protocol_version) == "handshake":
            if self._subscriptions:
                self._extras.append(asyncio.create_task(self._resubscribe(client, sorted(self._subscriptions))))
        elif self._on_notification is not None:
            self._restart_listener(client)
        return self._extras

    async def _resubscribe(self, client: Client, uris: list[str]) -> None:
        for uri in uris:
            try:
                await self.request("resources/subscribe", uri, partial(_send_subscribe, uri=uri, subscribe=True))
            except ConnectionLayerError as exc:
                logger.warning("MCP server %r: could not subscribe to %s: %s", self.key, uri, exc)

    def _restart_listener(self, client: Client) -> None:
        for task in self._extras:
            if task.get_name().startswith("mcp-listen:"):
                task.cancel()
        listener = asyncio.create_task(self._listen(client, sorted(self._subscriptions)), name=f"mcp-listen:{self.key}")
        self._extras.append(listener)

    async def _listen(self, client: Client, uris: list[str]) -> None:
        """2026-07-28 era: list-changed and resource-updated events arrive on a subscriptions/listen stream,
        not through the message handler. Re-listens if the stream drops while the session lives."""
        while client is self._client and self._dead_reason is None:
            try:
                async with client.listen(
                    tools_list_changed=True,
                    prompts_list_changed=True,
                    resources_list_changed=True,
                    resource_subscriptions=uris,
                ) as subscription:
                    async for event in subscription:
                        self._emit(event_to_notification(event, {}))
                return  # the server closed the stream gracefully
            except SubscriptionLost as exc:
                logger.info("MCP server %r: listen stream lost (%s); re-listening", self.key, exc)
            except (MCPError, ListenNotSupportedError, TimeoutError) as exc:
                # Servers may not implement subscriptions/listen; notifications are a bonus, not a requirement.
                logger.info("MCP server %r: no change notifications (%s)", self.key, describe_exception(exc))
                return
            await asyncio.sleep(1.0)

    def _set_state(self, state: ConnectionState, **changes: Any) -> None:
        previous = self._status
        self._status = replace(previous, state=state, **changes)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self._on_state_change is not None and (state != previous.state or changes):
            try:
                self._on_state_change(self.key, self.status())
            except Exception:
                logger.exception("on_state_change callback failed for %r", self.key)

    # -- requests -------------------------------------------------------------------------------------

    async def request(
        self,
        operation: str,
        target_name: str,
        fn: Callable[[Client], Awaitable[T]],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> T:
        """Run `fn(client)` on the live session; bounded, timed, recorded, with errors translated.

        Waits for a connect in progress (within the timeout); fails fast with ServerUnavailable in backoff.
        Raises RequestTimedOut, ServerError, ConnectionLost, InvalidResponse (all ConnectionLayerError).
        """
        timeout = self._target.request_timeout if timeout is None else timeout
        started_at = _utcnow()
        t0 = time.perf_counter()
        try:
            result = await self._execute(operation, target_name, fn, timeout, t0)
        except ConnectionLayerError as exc:
            self._record(operation, target_name, started_at, t0, _error_kind(exc), str(exc))
            raise
        except asyncio.CancelledError:
            self._record(operation, target_name, started_at, t0, "cancelled", "cancelled by the caller")
            raise
        except Exception as exc:
            self._record(operation, target_name, started_at, t0, "client_error", describe_exception(exc))
            raise
        if isinstance(result, CallToolResult | ToolCallResult) and result.is_error:
            message = result.text if isinstance(result, ToolCallResult) else "tool returned isError"
            self._record(operation, target_name, started_at, t0, "tool_error", message[:500])
        else:
            self._record(operation, target_name, started_at, t0, None, "")
        return result

    async def _await_client(self, deadline: float) -> Client:
        """The live client; waits (until `deadline`) only while a connect is in progress."""
        loop = asyncio.get_running_loop()
        while True:
            client = self._client
            if client is not None and self._dead_reason is None:
                return client
            status = self._status
            if self._stop_requested or status.state == "stopped":
                raise ServerUnavailable(self.key, "connection stopped (server removed or shutting down)")
            if status.state != "connecting":
                reason = "reconnecting after: " + (status.last_error or self._dead_reason or "session ended")
                raise ServerUnavailable(self.key, reason, status.next_retry_at)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ServerUnavailable(self.key, "still connecting")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def _execute(
        self,
        operation: str,
        target_name: str,
        fn: Callable[[Client], Awaitable[T]],
        timeout: float,  # noqa: ASYNC109
        t0: float,
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        client = self._client
        if client is None or self._dead_reason is not None:
            client = await self._await_client(deadline)
        try:
            # The asyncio deadline covers the semaphore wait and the whole call; the SDK read timeout
            # (set on the Client, overridable per call) covers each request round and cancels it cleanly
            # on the server. Whichever fires first, the caller sees RequestTimedOut.
            async with asyncio.timeout_at(deadline), self._semaphore:
                self._in_flight += 1
                try:
                    return await fn(client)
                finally:
                    self._in_flight -= 1
        except TimeoutError:
            raise RequestTimedOut(self.key, operation, timeout, target_name) from None
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise RequestTimedOut(self.key, operation, timeout, target_name) from None
            if exc.code == CONNECTION_CLOSED:
                self._session_died(client, "connection closed")
                raise ConnectionLost(self.key, operation, "connection closed") from None
            raise ServerError(self.key, exc.code, exc.message, exc.data, operation) from None
        except ValidationError as exc:
            raise InvalidResponse(self.key, operation, _first_line(exc)) from None
        except asyncio.CancelledError:
            if _being_cancelled():
                raise  # the caller's own cancellation (or its timeout): not ours to translate
            # A CancelledError nobody requested: the HTTP transport tore its task group down under us.
            self._session_died(client, "transport cancelled the request")
            raise ConnectionLost(self.key, operation, "the transport was torn down") from None
        except (
            BaseExceptionGroup,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
            anyio.EndOfStream,
            httpx2.TransportError,
            ConnectionError,
        ) as exc:
            reason = describe_exception(exc)
            self._session_died(client, reason)
            raise ConnectionLost(self.key, operation, reason) from None
        except RuntimeError as exc:
            if client is not self._client:
                raise ConnectionLost(self.key, operation, "session closed during the request") from None
            # The SDK raises RuntimeError for results it rejects (structured content not matching the
            # tool's output schema, an unexpected input_required result...).
            raise InvalidResponse(self.key, operation, _first_line(exc)) from None

    def _record(
        self,
        operation: str,
        target_name: str,
        started_at: datetime,
        t0: float,
        error_kind: ErrorKind | None,
        message: str,
    ) -> None:
        if self._on_call is None:
            return
        outcome = CallOutcome(
            server_key=self.key,
            operation=operation,
            target_name=target_name,
            started_at=started_at,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            ok=error_kind is None,
            error_kind=error_kind,
            error_message=message,
        )
        try:
            self._on_call(outcome)
        except Exception:
            logger.exception("on_call callback failed for %r", self.key)

    # -- convenience operations -------------------------------------------------------------------------

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ToolCallResult:
        """Call a tool. A result with isError=True is returned (and recorded as a tool_error), not raised."""
        read_timeout = self._target.request_timeout if timeout is None else timeout

        async def call(client: Client) -> ToolCallResult:
            return ToolCallResult.from_sdk(
                await client.call_tool(name, arguments or {}, read_timeout_seconds=read_timeout)
            )

        return await self.request("tools/call", name, call, timeout)

    async def discover(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> DiscoveredCapabilities:
        """All tools, resources, templates and prompts, all pages, fresh from the server."""
        return await self.request("discover", "", fetch_capabilities, timeout)

    async def probe(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> float:
        """Era-aware liveness check; returns the round-trip latency in milliseconds.

        Handshake era: `ping`. 2026-07-28 era: ping is gone (-32601), so a `server/discover`, the cheapest
        request every modern server must answer.
        """

        async def ping(client: Client) -> None:
            if era_of(client.protocol_version) == "handshake":
                await client.session.send_ping()
            else:
                await client.session.send_discover(client.protocol_version)

        t0 = time.perf_counter()
        await self.request("probe", "", ping, timeout)
        return (time.perf_counter() - t0) * 1000.0

    async def read_resource(
        self,
        uri: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ResourceReadResult:
        async def read(client: Client) -> ResourceReadResult:
            return ResourceReadResult.from_sdk(uri, await client.read_resource(uri))

        return await self.request("resources/read", uri, read, timeout)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _only_cancellations(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancellations(inner) for inner in exc.exceptions)
    return isinstance(exc, asyncio.CancelledError)


async def _send_subscribe(client: Client, *, uri: str, subscribe: bool) -> None:
    # Straight to send_request: the SDK's subscribe_resource helpers warn (deprecated in the 2026 era),
    # and this is only used on handshake-era sessions, where the methods are current.
    params = types.SubscribeRequestParams(uri=uri) if subscribe else types.UnsubscribeRequestParams(uri=uri)
    request = types.SubscribeRequest(params=params) if subscribe else types.UnsubscribeRequest(params=params)
    await client.session.send_request(request, types.EmptyResult)


def _has_connection_closed(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_has_connection_closed(inner) for inner in exc.exceptions)
    return isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _error_kind(exc: ConnectionLayerError) -> ErrorKind:
    if isinstance(exc, RequestTimedOut):
        return "timeout"
    if isinstance(exc, ServerUnavailable):
        return "unavailable"
    if isinstance(exc, ConnectionLost):
        return "connection_lost"
    if isinstance(exc, InvalidResponse):
        return "invalid_response"
    return "server_error"
