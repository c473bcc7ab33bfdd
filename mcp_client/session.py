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
its transport's read stream (see transports.py), so a stdio or SSE server that exits is noticed without a
call; on Streamable HTTP, a long-lived stream (the 2026 era's notification stream, the 2025 era's GET stream)
that breaks makes the connection check the server at once.

Everything that leaves a connection as text (statuses, errors, outcomes, log lines) goes through the target's
redactor: no secret value and no piece of a server's reply body travels further.

What the server sends passes the connection's `InboundGuard` (limits.py, the target's `inbound_limits`): an answer
too large for a message or for a result fails its request as InvalidResponse ("answer too large (N bytes, limit
M)") and the session goes on; notifications beyond the rate are dropped before they cost a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TextIO, TypeVar

import anyio
import httpx2
from mcp import Client, MCPError
from mcp.client.session import IncomingMessage
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult
from pydantic import BaseModel, ValidationError

from . import processes
from .backoff import BackoffPolicy
from .capabilities import DiscoveredCapabilities, dump, era_of, fetch_capabilities
from .client_request_relay import ClientRequestRelay
from .client_requests import ClientRequestRecord
from .connect_gate import ConnectGate
from .deadlines import NO_CONTEXT, RequestContext
from .errors import (
    ConnectionLayerError,
    ConnectionLost,
    InvalidResponse,
    RequestTimedOut,
    ServerError,
    ServerUnavailable,
)
from .failures import Diagnosis, HttpObservations, describe_exception, diagnose_connect_failure
from .in_flight import current_call
from .limits import AnswerTooLarge, InboundGuard
from .notifications import NotificationChannel, send_subscribe
from .outbound import OutboundPolicy
from .outcomes import CallOutcome, ErrorKind
from .progress import ProgressReporter
from .results import Answer, ResourceReadResult, ToolCallResult
from .state import ConnectionState, ConnectionStatus
from .stderr import StderrRelay
from .streams import ServerNotification, SessionStreams
from .targets import ServerTarget
from .transports import build_client

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long the owner gives a Client to exit before its cancel scope cuts the exit short. The stdio
# shutdown inside is shielded and bounded by the SDK (about 6 s worst case), so this only stops an HTTP
# session-termination DELETE to a hung server from wedging the owner.
EXIT_GRACE_SECONDS = 3.0
# A broken stream is checked with one quick probe; a hung server is the liveness checks' business, not this one's.
VERIFY_TIMEOUT_SECONDS = 2.0
VERIFY_MIN_INTERVAL_SECONDS = 0.5


class _ConnectTimeout(Exception):
    pass


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ServerConnection:
    """The owner task and request gateway for one MCP server (lives on one event loop)."""

    def __init__(
        self,
        target: ServerTarget,
        *,
        streams: SessionStreams | None = None,
        backoff: BackoffPolicy | None = None,
        errlog: TextIO | None = None,
        stop_timeout: float = 5.0,
        outbound: OutboundPolicy | None = None,
        connect_gate: ConnectGate | None = None,
    ) -> None:
        self._target = target
        self._gate = connect_gate
        self._streams = streams or SessionStreams()
        self._backoff = backoff or BackoffPolicy()
        self._errlog = errlog  # None: the child's stderr is relayed, scrubbed, into our log
        self._stop_timeout = stop_timeout
        self._outbound = outbound
        self._redact = target.redactor()
        # What the server may send (sizes, notification rate): one guard for the connection, across its sessions.
        self._inbound = InboundGuard(target.key, target.inbound_limits)
        self._semaphore = asyncio.Semaphore(target.max_concurrency)
        self._task: asyncio.Task[None] | None = None
        self._client: Client | None = None
        self._dead_reason: str | None = None
        self._wake = asyncio.Event()  # set to end the current phase: stop requested, session died, retry now
        self._changed = asyncio.Event()  # replaced on every state change; waiters wait on the old one
        self._scope: anyio.CancelScope | None = None
        self._connecting = False
        self._waiting_for_slot = False
        self._stop_requested = False
        self._status = ConnectionStatus(key=target.key, transport=target.transport, state="connecting")
        self._in_flight = 0
        self._stream_errors = 0
        self._connected_at: float | None = None
        self._http = HttpObservations()
        self._verifying = False
        self._last_verify = 0.0
        self._pid: int | None = None  # the current stdio child, for the safety nets
        # Until the handshake names the child, how to find it: the children before the spawn and its token.
        self._spawning: tuple[set[int], str] | None = None
        # Server requests and log entries during a pass-through call go to that call's agent (across sessions).
        self._client_requests = ClientRequestRelay(target.key, on_request=self._record_client_request)
        self._notifications = NotificationChannel(
            target.key,
            emit=self._emit,
            subscribe_request=self._subscribe_request,
            is_current=lambda client: client is self._client and self._dead_reason is None,
            on_stream_lost=self.verify_soon,
        )

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

    @property
    def streams(self) -> SessionStreams:
        return self._streams

    def status(self) -> ConnectionStatus:
        return replace(self._status, in_flight=self._in_flight, stream_errors=self._stream_errors)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def inbound(self) -> InboundGuard:
        """The limits on what the server sends, with what they refused and dropped so far."""
        return self._inbound

    @property
    def client_requests(self) -> ClientRequestRelay:
        """Where a pass-through call registers its agent, so that what the server asks meanwhile reaches it."""
        return self._client_requests

    @property
    def subscriptions(self) -> frozenset[str]:
        """Resource URIs this connection keeps subscribed (re-applied after every reconnect)."""
        return frozenset(self._notifications.uris)

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the owner task on the running loop (idempotent)."""
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._own(), name=f"mcp-owner:{self.key}")

    def reconnect_now(self) -> bool:
        """Cut a backoff short: the next connect attempt starts at once (an operator asked, or the server changed).
        Returns whether the connection was waiting."""
        if self._status.state != "backoff" or self._stop_requested:
            return False
        # "connecting" right away, so a caller waiting for the outcome waits for this attempt, not the old failure.
        self._set_state("connecting", next_retry_at=None)
        self._wake.set()
        return True

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
        if self._waiting_for_slot:
            task.cancel()  # still waiting to connect: nothing started yet, so a plain cancellation is safe
            await asyncio.wait({task}, timeout=timeout)
            return
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
        """Emergency stop: SIGKILL the current stdio child's process group. Sync, safe from any thread.
        Also while the handshake is still pending (a server that never answers), found by its session token."""
        pid = self._pid
        spawning = self._spawning
        if pid is None and spawning is not None:
            pid = processes.identify_child(*spawning)
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
                raise ServerUnavailable(self.key, status.last_error or "session ended", status.next_retry_at)
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
                diagnosis: Diagnosis | None = None
                self._connected_at = None
                self._http.reset()
                try:
                    await self._run_session()
                except _ConnectTimeout as exc:
                    diagnosis = Diagnosis(str(exc))
                except asyncio.CancelledError:
                    if self._stop_requested or _being_cancelled():
                        raise
                    # A cancellation nobody asked for: the HTTP transport's task group tearing down.
                    diagnosis = Diagnosis("transport cancelled the session")
                except (Exception, BaseExceptionGroup) as exc:  # noqa: B036 - the SDK raises groups of anything
                    if self._stop_requested and _only_cancellations(exc):
                        break
                    if isinstance(exc, BaseExceptionGroup) and _being_cancelled():
                        raise
                    if self._connected_at is None:
                        target = self._target
                        diagnosis = diagnose_connect_failure(
                            exc, command=target.command, cwd=target.cwd, http=self._http, oauth=target.oauth is not None
                        )
                    else:
                        diagnosis = Diagnosis(describe_exception(exc))
                if self._stop_requested:
                    break
                connected_at = self._connected_at  # set by _run_session once the handshake succeeded
                if diagnosis is None:
                    diagnosis = Diagnosis(self._dead_reason or "session ended")
                error = self._redact(diagnosis.message)
                lived = time.monotonic() - connected_at if connected_at is not None else 0.0
                if connected_at is not None and lived >= self._backoff.stable_after:
                    failures = 0
                failures += 1
                delay = self._backoff.delay(failures, needs_attention=diagnosis.needs_attention)
                logger.info("MCP server %r: %s; reconnecting in %.2fs", self.key, error, delay)
                self._wake = asyncio.Event()
                self._set_state(
                    "backoff",
                    last_error=error,
                    last_error_at=_utcnow(),
                    needs_attention=diagnosis.needs_attention,
                    consecutive_failures=failures,
                    next_retry_at=_utcnow() + timedelta(seconds=delay),
                    connected_since=None,
                    pid=None,
                )
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
        # The connect timeout starts once a slot is ours: waiting behind a storm of other connects is not this
        # server's slowness. Taken before anything is started, so a stop while waiting leaves nothing behind.
        release_slot = _nothing
        if self._gate is not None:
            self._waiting_for_slot = True
            try:
                release_slot = await self._gate.enter()
            finally:
                self._waiting_for_slot = False
            if self._stop_requested:
                release_slot()
                return
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
        relay = StderrRelay(self.key, self._redact) if stdio and self._errlog is None else None
        try:
            client = build_client(
                target,
                message_handler=self._on_message,
                on_transport_closed=on_transport_closed,
                errlog=relay.writer if relay is not None else self._errlog,
                extra_env={processes.SESSION_ENV: token} if stdio else None,
                outbound=self._outbound,
                http_observations=self._http,
                on_stream_dropped=self.verify_soon,
                on_client_request=self._record_client_request,
                guard=self._inbound,
                relay=self._client_requests,
            )
            if relay is not None:
                relay.start()
        except BaseException:
            release_slot()
            raise
        children_before = processes.child_pids() if stdio else set()
        self._spawning = (children_before, token) if stdio else None
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
                    release_slot()
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
                            needs_attention=False,
                            sessions=self._status.sessions + 1,
                            pid=pid,
                        )
                        logger.info(
                            "MCP server %r connected (%s, protocol %s)",
                            self.key,
                            target.describe(),
                            client.protocol_version,
                        )
                        extras = self._notifications.start(client)
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
            release_slot()
            self._connecting = False
            self._scope = None
            self._client = None
            if extras:
                # Let the cancelled helpers unwind (return_exceptions: their errors are theirs; only our own
                # cancellation may propagate from here).
                await asyncio.gather(*extras, return_exceptions=True)
            self._pid = None
            self._spawning = None
            if pid is not None:
                self._reap(pid)
            if relay is not None:
                await relay.aclose()

    def _reap(self, pid: int) -> None:
        """Safety net: the SDK normally has the child dead by now; if not, kill its process group."""
        if processes.is_alive(pid) and pid in processes.child_pids():
            logger.warning("MCP server %r: stdio child %d survived its session; killing its group", self.key, pid)
            processes.kill_group(pid)

    def _session_died(self, client: Client | None, reason: str) -> None:
        """Called by requests and by the transport watcher: wake the owner to rebuild the session."""
        if client is None or client is not self._client or self._dead_reason is not None:
            return
        self._dead_reason = self._redact(reason)
        logger.info("MCP server %r: session lost (%s)", self.key, self._dead_reason)
        self._wake.set()

    def verify_soon(self, why: str = "") -> None:
        """A stream of this session broke: find out now whether the server is still there (one quick probe; a
        request that meets a dead transport reports the death itself)."""
        now = time.monotonic()
        if self._verifying or self._client is None or now - self._last_verify < VERIFY_MIN_INTERVAL_SECONDS:
            return
        self._verifying = True
        self._last_verify = now
        logger.debug("MCP server %r: checking the session (%s)", self.key, why)
        asyncio.get_running_loop().create_task(self._verify(), name=f"mcp-verify:{self.key}")

    async def _verify(self) -> None:
        try:
            await self.probe(timeout=VERIFY_TIMEOUT_SECONDS, context=RequestContext(caller="connection-watch"))
        except ConnectionLayerError:
            pass  # reported through the outcome; a lost connection has already woken the owner
        finally:
            self._verifying = False

    def _set_state(self, state: ConnectionState, **changes: Any) -> None:
        previous = self._status
        self._status = replace(previous, state=state, **changes)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if state != previous.state or changes:
            self._streams.states.publish(self.status())

    # -- notifications ----------------------------------------------------------------------------------

    async def _on_message(self, message: IncomingMessage) -> None:
        """SDK message_handler: server notifications (handshake era) and transport-level faults."""
        if isinstance(message, Exception):
            # Unparseable output (garbage on stdout, a bad SSE event): the SDK drops it and keeps reading.
            self._stream_errors += 1
            logger.debug("MCP server %r sent an unparseable message: %s", self.key, self._redact(str(message)))
            return
        meta = getattr(getattr(message, "params", None), "meta", None)
        if meta and SUBSCRIPTION_ID_META_KEY in meta:
            # An event of our subscriptions/listen stream: the SDK also hands it to the message handler, and the
            # listen channel (notifications.py) reports it already. Once is enough.
            return
        self._emit(message)

    def _emit(self, notification: Any) -> None:
        """Hand a server notification to the notifications stream, whatever the era."""
        params = getattr(notification, "params", None)
        payload = dump(params) if isinstance(params, BaseModel) else {}
        self._streams.notifications.publish(
            ServerNotification(server=self.key, method=str(notification.method), params=payload)
        )

    def _record_client_request(self, record: ClientRequestRecord) -> None:
        """A request the server sent us (elicitation, sampling, roots) and what the policy answered."""
        declined = record.decision != "accepted"
        self._streams.outcomes.publish(
            CallOutcome(
                server_key=self.key,
                operation=record.method,
                target_name="",
                started_at=record.at,
                latency_ms=0.0,
                ok=True,
                error_kind=None,
                error_message=self._redact(f"{record.decision}: {record.detail}" if declined else record.detail),
                caller="server",
            )
        )

    async def subscribe_resources(self, uris: Iterable[str], context: RequestContext = NO_CONTEXT) -> None:
        """Ask for resources/updated notifications for these URIs, now and after every reconnect."""
        await self._notifications.subscribe(self._live_client(), uris)

    async def unsubscribe_resources(self, uris: Iterable[str]) -> None:
        await self._notifications.unsubscribe(self._live_client(), uris)

    def _live_client(self) -> Client | None:
        return self._client if self._dead_reason is None else None

    async def _subscribe_request(self, uri: str, subscribe: bool) -> None:
        operation = "resources/subscribe" if subscribe else "resources/unsubscribe"
        await self.request(operation, uri, partial(send_subscribe, uri=uri, subscribe=subscribe))

    # -- requests -------------------------------------------------------------------------------------

    async def request(
        self,
        operation: str,
        target_name: str,
        fn: Callable[[Client], Awaitable[T]],
        timeout: float | None = None,  # noqa: ASYNC109
        context: RequestContext = NO_CONTEXT,
    ) -> Answer[T]:
        """Run `fn(client)` on the live session; bounded, timed, recorded, with errors translated.

        The time allowed is the server's request timeout (or `timeout`), cut to what is left of the context's
        deadline. Waits for a connect in progress (within that time); fails fast with ServerUnavailable in
        backoff. Raises RequestTimedOut, ServerError, ConnectionLost, InvalidResponse (all ConnectionLayerError,
        each with its `outcome`).
        """
        timeout = self._target.request_timeout if timeout is None else timeout
        if context.deadline is not None:
            timeout = context.deadline.cap(timeout)
        started_at = _utcnow()
        t0 = time.perf_counter()
        try:
            if timeout <= 0:
                raise RequestTimedOut(self.key, operation, 0, target_name)
            result = await self._execute(operation, target_name, fn, timeout)
        except ConnectionLayerError as exc:
            exc.outcome = self._record(operation, target_name, started_at, t0, _error_kind(exc), str(exc), context)
            raise
        except asyncio.CancelledError:
            # A call a person cancelled through the API (in_flight.py) says who; its outcome goes back with it.
            tracked = current_call()
            who = tracked.cancelled_by if tracked is not None else None
            message = f"cancelled by {who}" if who else "cancelled by the caller"
            outcome = self._record(operation, target_name, started_at, t0, "cancelled", message, context)
            if tracked is not None and who:
                tracked.outcome = outcome
            raise
        except Exception as exc:
            message = describe_exception(exc)
            self._record(operation, target_name, started_at, t0, "client_error", message, context)
            raise
        if isinstance(result, CallToolResult | ToolCallResult) and result.is_error:
            message = result.text if isinstance(result, ToolCallResult) else "tool returned isError"
            outcome = self._record(operation, target_name, started_at, t0, "tool_error", message, context)
        else:
            outcome = self._record(operation, target_name, started_at, t0, None, "", context)
        return Answer(result, outcome)

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
            too_large = AnswerTooLarge.from_error(exc.code, exc.data)
            if too_large is not None:  # our stand-in for an answer refused while it streamed in (limits.py)
                raise InvalidResponse(self.key, operation, str(too_large)) from None
            raise ServerError(self.key, exc.code, self._redact(exc.message), exc.data, operation) from None
        except AnswerTooLarge as exc:  # a result's content over MCP_MAX_RESULT_BYTES (results.py)
            raise InvalidResponse(self.key, operation, str(exc)) from None
        except ValidationError as exc:
            raise InvalidResponse(self.key, operation, self._redact(_first_line(exc))) from None
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
            reason = self._redact(describe_exception(exc))
            self._session_died(client, reason)
            raise ConnectionLost(self.key, operation, reason) from None
        except RuntimeError as exc:
            if client is not self._client:
                raise ConnectionLost(self.key, operation, "session closed during the request") from None
            # The SDK raises RuntimeError for results it rejects (structured content not matching the
            # tool's output schema, an unexpected input_required result...).
            raise InvalidResponse(self.key, operation, self._redact(_first_line(exc))) from None

    def _record(
        self,
        operation: str,
        target_name: str,
        started_at: datetime,
        t0: float,
        error_kind: ErrorKind | None,
        message: str,
        context: RequestContext,
    ) -> CallOutcome:
        outcome = CallOutcome(
            server_key=self.key,
            operation=operation,
            target_name=target_name,
            started_at=started_at,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            ok=error_kind is None,
            error_kind=error_kind,
            error_message=self._redact(message) if message else "",
            correlation_id=context.correlation_id,
            caller=context.caller,
        )
        self._streams.outcomes.publish(outcome)
        return outcome

    # -- convenience operations -------------------------------------------------------------------------

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        context: RequestContext = NO_CONTEXT,
    ) -> Answer[ToolCallResult]:
        """Call a tool. A result with isError=True is returned (and recorded as a tool_error), not raised."""

        # Every call asks for progress (the request carries a progress token): what the server reports goes, bounded
        # and coalesced, onto the progress stream (progress.py), the last report before the answer.
        reporter = ProgressReporter(
            server=self.key,
            tool=name,
            correlation_id=context.correlation_id,
            caller=context.caller,
            publish=self._streams.progress.publish,
        )

        async def call(client: Client) -> ToolCallResult:
            # The SDK's own read timeout matches ours, so a timed-out call is also cancelled on the server.
            remaining = max(0.001, deadline - asyncio.get_running_loop().time())
            try:
                result = await client.call_tool(
                    name, arguments or {}, read_timeout_seconds=remaining, progress_callback=reporter
                )
            finally:
                reporter.finish()
            return ToolCallResult.from_sdk(result, max_bytes=self._inbound.limits.max_result_bytes)

        allowed = self._target.request_timeout if timeout is None else timeout
        if context.deadline is not None:
            allowed = context.deadline.cap(allowed)
        deadline = asyncio.get_running_loop().time() + allowed
        return await self.request("tools/call", name, call, timeout, context)

    async def discover(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
        context: RequestContext = NO_CONTEXT,
    ) -> Answer[DiscoveredCapabilities]:
        """All tools, resources, templates and prompts, fresh from the server, within the target's capability limits."""
        discover = partial(fetch_capabilities, limits=self._target.capability_limits)
        return await self.request("discover", "", discover, timeout, context)

    async def probe(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
        context: RequestContext = NO_CONTEXT,
    ) -> Answer[float]:
        """Era-aware liveness check; the result is the round-trip latency in milliseconds.

        Handshake era: `ping`. 2026-07-28 era: ping is gone (-32601). A server that can no longer list what it
        offers is not usable even if it still answers the connection plumbing (`server/discover`), so the check is
        the cheapest listing it declares (prompts, then resources, then tools: measured about 0.5, 0.7 and 1.5 ms
        of client CPU above a bare `server/discover`), and `server/discover` only for a server that declares none.
        """

        async def ping(client: Client) -> float:
            t0 = time.perf_counter()
            capabilities = client.server_capabilities
            if era_of(client.protocol_version) == "handshake":
                await client.session.send_ping()
            elif capabilities.prompts is not None:
                await client.list_prompts(cache_mode="bypass")
            elif capabilities.resources is not None:
                await client.list_resources(cache_mode="bypass")
            elif capabilities.tools is not None:
                await client.list_tools(cache_mode="bypass")
            else:
                await client.session.send_discover(client.protocol_version)
            return (time.perf_counter() - t0) * 1000.0

        return await self.request("probe", "", ping, timeout, context)

    async def read_resource(
        self,
        uri: str,
        timeout: float | None = None,  # noqa: ASYNC109
        context: RequestContext = NO_CONTEXT,
    ) -> Answer[ResourceReadResult]:
        async def read(client: Client) -> ResourceReadResult:
            return ResourceReadResult.from_sdk(
                uri, await client.read_resource(uri), max_bytes=self._inbound.limits.max_result_bytes
            )

        return await self.request("resources/read", uri, read, timeout, context)


def _nothing() -> None:
    pass


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _only_cancellations(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancellations(inner) for inner in exc.exceptions)
    return isinstance(exc, asyncio.CancelledError)


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
