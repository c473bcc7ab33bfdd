"""The fleet API: the one way the rest of the application talks to MCP servers.

Every app above the connection layer (health, fusion, pipeline, coordinator, the web views and commands) calls a
tool, reads a resource, discovers or checks liveness through these functions, and nothing above touches the hub or
the runtime. This is the seam where, at scale, a call is routed to the worker process that holds the server's
session.

- Servers are named by name, in every error, log line and event.
- Every call takes an absolute `Deadline` (so a caller's budget is shared by its retries and failovers), an optional
  correlation id and the caller's identity, and returns an `Answer`: the result together with its `CallOutcome`.
  A failure raises a `ConnectionLayerError` (ServerUnavailable, RequestTimedOut, ServerError, ConnectionLost,
  InvalidResponse) that carries the same outcome.
- Async first: `await call_tool("exchange-alpha", "get_quote", {...})` works from any event loop (the work runs on
  the fleet loop). The `*_sync` wrappers are for views and commands; they take the `Server` row, so a process that
  does not run the supervisor (a management command) can still open the session on demand.
- The session streams (`subscribe_states`, `subscribe_notifications`, `subscribe_outcomes`) are read on the fleet
  loop, by the supervisor, the pipeline and health.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings

from fleet import application
from mcp_client import (
    Answer,
    CallOutcome,
    ConnectionHub,
    ConnectionStatus,
    Deadline,
    DiscoveredCapabilities,
    FleetRuntime,
    RequestContext,
    ResourceReadResult,
    ServerNotification,
    ServerTarget,
    Subscription,
    ToolCallResult,
)
from mcp_client.capabilities import CapabilityLimits, dump
from mcp_client.hub import discover_once
from mcp_client.in_flight import CancelResult
from mcp_client.limits import AnswerTooLarge, Limits, content_bytes
from mcp_client.outbound import OutboundPolicy
from mcp_client.progress import CallProgress
from mcp_client.runtime import Submittable
from registry.models import Server
from registry.oauth_store import oauth_settings_for

T = TypeVar("T")

# A sync caller waits this much longer than its deadline for the fleet loop to hand the answer back: the work itself
# ends at the deadline (every call in it carries it), so only a stalled loop or work that overruns uses the slack.
HANDOFF_SLACK_SECONDS = 5.0


def fleet_runtime() -> FleetRuntime:
    """The process's fleet loop and hub: the running fleet application's (an on-demand one when none runs)."""
    return application.current().runtime


def running_runtime() -> FleetRuntime | None:
    """The running application's fleet loop and hub, without starting anything (None when nothing runs)."""
    running = application.running()
    return running.runtime if running is not None else None


def server_target(server: Server) -> ServerTarget:
    """What to connect to for a server row; ValueError when the stored definition cannot be used."""
    return ServerTarget(
        key=server.name,
        transport=server.transport,  # type: ignore[arg-type]
        command=server.command,
        args=tuple(server.args),
        env=server.env,
        cwd=server.cwd or None,
        url=server.url,
        headers=server.headers,
        request_timeout=server.request_timeout_seconds,
        connect_timeout=settings.MCP_CONNECT_TIMEOUT_SECONDS,
        max_concurrency=server.max_concurrency,
        capability_limits=capability_limits(),
        inbound_limits=inbound_limits(),
        oauth=oauth_settings_for(server),
    )


def inbound_limits() -> Limits:
    """What a server may send (message and result sizes, notification rate), from settings."""
    return Limits(
        max_message_bytes=settings.MCP_MAX_MESSAGE_BYTES,
        max_result_bytes=settings.MCP_MAX_RESULT_BYTES,
        notifications_per_second=settings.MCP_MAX_NOTIFICATIONS_PER_SECOND,
        notification_burst=settings.MCP_NOTIFICATION_BURST,
    )


def capability_limits() -> CapabilityLimits:
    """How much of a server's lists a discovery keeps, from settings."""
    return CapabilityLimits(
        max_items=settings.MCP_MAX_CAPABILITIES_PER_LIST,
        max_item_bytes=settings.MCP_MAX_CAPABILITY_BYTES,
        max_list_bytes=settings.MCP_MAX_CAPABILITY_LIST_BYTES,
    )


def _context(deadline: Deadline | None, correlation_id: str, caller: str) -> RequestContext:
    return RequestContext(deadline=deadline, correlation_id=correlation_id, caller=caller)


async def _on_fleet_loop(work: Callable[[ConnectionHub], Awaitable[T]]) -> T:
    """Run `work(hub)` on the fleet loop, from whatever loop we are on."""
    return await fleet_runtime().arun(work)


# -- the bridge from sync code (views, commands, the coordinator's phases) ---------------------------------------


class FleetTimedOut(TimeoutError):
    """Sync code waited for work on the fleet loop past its deadline plus the hand-off slack.

    The work was cancelled on the fleet loop. `what` names the work, as its caller described it.
    """

    def __init__(self, what: str, waited_seconds: float) -> None:
        super().__init__(
            f"{what} did not finish on the fleet loop within {waited_seconds:.3g}s "
            f"(its deadline and {HANDOFF_SLACK_SECONDS:g}s for the hand-off)"
        )
        self.what = what
        self.waited_seconds = waited_seconds


def run_on_fleet(work: Submittable[T], *, deadline: Deadline, what: str) -> T:
    """Run `work` (a coroutine, or `fn(hub) -> awaitable`) on the fleet loop and wait for it, from sync code.

    The one way a thread hands work to the fleet loop. The work is expected to end by `deadline` (its calls carry
    it); the thread waits until then plus `HANDOFF_SLACK_SECONDS`, then cancels the work and raises FleetTimedOut
    naming `what`. The work's own exceptions (a TimeoutError among them) pass through unchanged; RuntimeError when
    no fleet loop can run it, or when called on the fleet loop itself (where it would deadlock: await instead).
    """
    runtime = fleet_runtime()
    try:
        on_fleet_loop = asyncio.get_running_loop() is runtime.loop
    except RuntimeError:
        on_fleet_loop = False
    if on_fleet_loop:
        if asyncio.iscoroutine(work):
            work.close()
        raise RuntimeError(f"run_on_fleet({what}) would deadlock on the fleet loop; await the work instead")
    waited = max(0.0, deadline.remaining()) + HANDOFF_SLACK_SECONDS
    future = runtime.submit(work)
    # wait() rather than result(timeout): the work may raise TimeoutError itself, and that is not ours to rename.
    done, _ = concurrent.futures.wait([future], timeout=waited)
    if not done:
        future.cancel()
        raise FleetTimedOut(what, waited)
    return future.result()


async def await_on_fleet(work: Submittable[T], *, deadline: Deadline, what: str) -> T:
    """`run_on_fleet` for async code on another loop (the API's async views): the same deadline plus
    `HANDOFF_SLACK_SECONDS`, then the work is cancelled and FleetTimedOut names `what`; no thread is held."""
    waited = max(0.0, deadline.remaining()) + HANDOFF_SLACK_SECONDS
    task = asyncio.ensure_future(fleet_runtime().arun(work))
    done, _ = await asyncio.wait([task], timeout=waited)
    if not done:
        task.cancel()  # cancels the work on the fleet loop too
        raise FleetTimedOut(what, waited)
    return task.result()


# -- async API (names) -------------------------------------------------------------------------------------------


async def call_tool(
    server: str,
    tool: str,
    arguments: dict[str, Any] | None = None,
    *,
    deadline: Deadline | None = None,
    correlation_id: str = "",
    caller: str = "",
) -> Answer[ToolCallResult]:
    """Call a tool on a running server. A tool that answers isError is a result (outcome `tool_error`), not an
    exception."""
    context = _context(deadline, correlation_id, caller)
    return await _on_fleet_loop(lambda hub: hub.call_tool(server, tool, arguments, context=context))


async def read_resource(
    server: str, uri: str, *, deadline: Deadline | None = None, correlation_id: str = "", caller: str = ""
) -> Answer[ResourceReadResult]:
    context = _context(deadline, correlation_id, caller)
    return await _on_fleet_loop(lambda hub: hub.read_resource(server, uri, context=context))


@dataclass
class PromptResult:
    """A rendered prompt (`prompts/get`): its description and messages, each a role and one content item in the
    wire's JSON shape (a text, an image, an embedded resource...)."""

    name: str
    description: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "messages": self.messages}


async def prompt_on(
    hub: ConnectionHub, server: str, prompt: str, arguments: dict[str, str] | None, context: RequestContext
) -> Answer[PromptResult]:
    """`prompts/get` on the server's session, bounded, timed and recorded like every request (the connection layer
    has no helper for it: the session's generic `request` runs it). Its messages are held to MCP_MAX_RESULT_BYTES as
    a tool's result is."""
    connection = hub.connection(server)
    max_bytes = connection.inbound.limits.max_result_bytes

    async def get(client: Any) -> PromptResult:
        result = await client.get_prompt(prompt, arguments or None)
        size, exact = content_bytes([message.content for message in result.messages], budget=max_bytes)
        if size > max_bytes:
            raise AnswerTooLarge(size, max_bytes, at_least=not exact)
        messages = [{"role": message.role, "content": dump(message.content)} for message in result.messages]
        return PromptResult(name=prompt, description=result.description or "", messages=messages)

    return await connection.request("prompts/get", prompt, get, context=context)


async def get_prompt(
    server: str,
    prompt: str,
    arguments: dict[str, str] | None = None,
    *,
    deadline: Deadline | None = None,
    correlation_id: str = "",
    caller: str = "",
) -> Answer[PromptResult]:
    """Render one of a running server's prompts with its arguments (strings, as MCP declares them)."""
    context = _context(deadline, correlation_id, caller)
    return await _on_fleet_loop(lambda hub: prompt_on(hub, server, prompt, arguments, context))


async def discover(
    server: str, *, deadline: Deadline | None = None, correlation_id: str = "", caller: str = ""
) -> Answer[DiscoveredCapabilities]:
    """Everything the server offers, fresh. Waits for a session that is still connecting (within the deadline)."""
    context = _context(deadline, correlation_id, caller)
    return await _on_fleet_loop(lambda hub: hub.discover(server, context=context))


async def check_liveness(
    server: str,
    *,
    deadline: Deadline | None = None,
    correlation_id: str = "",
    caller: str = "",
) -> Answer[float]:
    """The era's liveness probe; the result is its round trip in milliseconds."""
    context = _context(deadline, correlation_id, caller)
    return await _on_fleet_loop(lambda hub: hub.probe(server, context=context))


async def subscribe_resources(server: str, uris: Iterable[str]) -> None:
    """Keep `notifications/resources/updated` for these URIs coming from the server, across reconnects."""
    wanted = list(uris)
    await _on_fleet_loop(lambda hub: hub.subscribe_resources(server, wanted))


async def unsubscribe_resources(server: str, uris: Iterable[str]) -> None:
    gone = list(uris)
    await _on_fleet_loop(lambda hub: hub.unsubscribe_resources(server, gone))


def connection_status(server: str) -> ConnectionStatus | None:
    """One running connection's state (safe from any thread); None when the server has no connection."""
    runtime = running_runtime()
    connection = runtime.hub.get(server) if runtime is not None else None
    return connection.status() if connection is not None else None


def connection_statuses() -> dict[str, ConnectionStatus]:
    """A snapshot of every running connection's state (safe from any thread)."""
    runtime = running_runtime()
    return runtime.hub.statuses() if runtime is not None else {}


# -- session streams (read on the fleet loop) ------------------------------------------------------------------


def _hub_on_this_loop() -> ConnectionHub:
    runtime = fleet_runtime()
    if asyncio.get_running_loop() is not runtime.loop:
        raise RuntimeError("session streams are read on the fleet loop: start the reader with fleet_runtime().submit")
    return runtime.hub


def subscribe_states(*, name: str, maxsize: int = 1_000) -> Subscription[ConnectionStatus]:
    return _hub_on_this_loop().streams.states.subscribe(name=name, maxsize=maxsize)


def subscribe_notifications(
    *, name: str, maxsize: int = 10_000, accept: Callable[[ServerNotification], bool] | None = None
) -> Subscription[ServerNotification]:
    return _hub_on_this_loop().streams.notifications.subscribe(name=name, maxsize=maxsize, accept=accept)


def subscribe_outcomes(*, name: str, maxsize: int = 50_000) -> Subscription[CallOutcome]:
    return _hub_on_this_loop().streams.outcomes.subscribe(name=name, maxsize=maxsize)


def subscribe_progress(*, name: str, maxsize: int = 10_000) -> Subscription[CallProgress]:
    """Tool calls' progress as servers report it (already coalesced per call: mcp_client/progress.py)."""
    return _hub_on_this_loop().streams.progress.subscribe(name=name, maxsize=maxsize)


def stream_stats() -> dict[str, Any]:
    runtime = running_runtime()
    return runtime.hub.streams.stats() if runtime is not None else {}


# -- membership (the supervisor's tools; the sync wrappers below use them too) --------------------------------


async def ensure_running(target: ServerTarget) -> None:
    """Start (or restart, when its settings changed) the server's session."""
    await _on_fleet_loop(lambda hub: hub.ensure(target))


async def stop_running(server: str) -> None:
    await _on_fleet_loop(lambda hub: hub.remove(server))


def reconnect_now(server: str) -> bool:
    """Cut a reconnect backoff short (thread-safe); True when the server was waiting to reconnect."""
    runtime = running_runtime()
    if runtime is None:
        return False
    # Instant work: it only waits for its turn on the fleet loop.
    return bool(
        run_on_fleet(
            lambda hub: hub.reconnect_now(server), deadline=Deadline.within(0.0), what=f"a reconnect of {server!r}"
        )
    )


async def on_server(
    target: ServerTarget,
    work: Callable[[ConnectionHub, RequestContext], Awaitable[T]],
    *,
    deadline: Deadline | None,
    correlation_id: str = "",
    caller: str = "",
    cancellable: tuple[str, str] | None = None,
) -> T:
    """`work(hub, context)` on the fleet loop for a server given by its definition, whose session is opened on demand
    (a no-op when the supervisor already runs this exact definition): what the API's views await.

    `cancellable=(operation, target_name)` keeps the work in the hub's calls in flight under `correlation_id` while
    it runs, so that its caller (or an admin) can cancel it (`cancel_call`): it then raises `CallCancelled`, with the
    recorded outcome. A correlation id already in flight raises `DuplicateCall` before anything is sent."""
    context = _context(deadline, correlation_id, caller)

    async def run(hub: ConnectionHub) -> T:
        if cancellable is None or not correlation_id:
            await hub.ensure(target)
            return await work(hub, context)
        operation, target_name = cancellable
        with hub.in_flight.track(
            correlation_id=correlation_id,
            server=target.key,
            operation=operation,
            target_name=target_name,
            caller=caller,
        ):
            await hub.ensure(target)
            return await work(hub, context)

    return await _on_fleet_loop(run)


def cancel_call(correlation_id: str, *, by: str, may_cancel_others: bool) -> CancelResult:
    """Cancel a call in flight by its correlation id (thread-safe, never waits): the protocol's cancellation goes to
    the server and the call answers `CallCancelled`. UNKNOWN when no such call runs in this process (never made, or
    finished), FORBIDDEN when it is someone else's and `may_cancel_others` is false."""
    runtime = running_runtime()
    if runtime is None:
        return CancelResult.UNKNOWN
    return runtime.hub.in_flight.cancel(correlation_id, by=by, may_cancel_others=may_cancel_others)


# -- sync wrappers for views and commands (Server rows) --------------------------------------------------------


def _sync(server: Server, work: Callable[[ConnectionHub, RequestContext], Awaitable[T]], context: RequestContext) -> T:
    target = server_target(server)

    async def run(hub: ConnectionHub) -> T:
        await hub.ensure(target)  # a no-op when the supervisor already runs this exact definition
        return await work(hub, context)

    deadline = context.deadline or Deadline.within(server.request_timeout_seconds)  # the wrappers always set one
    return run_on_fleet(run, deadline=deadline, what=f"a request to MCP server {server.name!r}")


def call_tool_sync(
    server: Server,
    tool: str,
    arguments: dict[str, Any] | None = None,
    *,
    timeout: float | None = None,
    correlation_id: str = "",
    caller: str = "",
) -> Answer[ToolCallResult]:
    deadline = Deadline.within(timeout if timeout is not None else server.request_timeout_seconds)
    return _sync(
        server,
        lambda hub, context: hub.call_tool(server.name, tool, arguments, context=context),
        _context(deadline, correlation_id, caller),
    )


def read_resource_sync(
    server: Server, uri: str, *, timeout: float | None = None, correlation_id: str = "", caller: str = ""
) -> Answer[ResourceReadResult]:
    deadline = Deadline.within(timeout if timeout is not None else server.request_timeout_seconds)
    return _sync(
        server,
        lambda hub, context: hub.read_resource(server.name, uri, context=context),
        _context(deadline, correlation_id, caller),
    )


def discover_sync(
    server: Server, *, timeout: float | None = None, correlation_id: str = "", caller: str = ""
) -> Answer[DiscoveredCapabilities]:
    """Discover now. A server waiting to reconnect is tried again at once rather than answering "in backoff"."""
    seconds = timeout if timeout is not None else settings.MCP_CONNECT_TIMEOUT_SECONDS + server.request_timeout_seconds
    deadline = Deadline.within(seconds)

    async def work(hub: ConnectionHub, context: RequestContext) -> Answer[DiscoveredCapabilities]:
        hub.reconnect_now(server.name)  # waits for this new attempt, not for the backoff it cuts short
        connection = hub.connection(server.name)
        await connection.wait_connected(
            max(0.1, deadline.cap(settings.MCP_CONNECT_TIMEOUT_SECONDS)), fail_in_backoff=True
        )
        return await connection.discover(context=context)

    return _sync(server, work, _context(deadline, correlation_id, caller))


def discover_definition_sync(target: ServerTarget, *, deadline: Deadline) -> DiscoveredCapabilities:
    """Connect to a definition that is not (yet) part of the fleet, discover it, disconnect: a form's "test
    connection". On the fleet loop, through this module's bridge, under the outbound address policy like every
    session; no call is recorded (the server is not in the registry)."""
    policy = OutboundPolicy.parse(settings.OUTBOUND_ALLOWED_NETWORKS)
    return run_on_fleet(
        discover_once(target, outbound=policy), deadline=deadline, what=f"a connection test of {target.describe()}"
    )


def check_liveness_sync(
    server: Server, *, timeout: float | None = None, correlation_id: str = "", caller: str = ""
) -> Answer[float]:
    deadline = Deadline.within(timeout if timeout is not None else server.request_timeout_seconds)
    return _sync(
        server, lambda hub, context: hub.probe(server.name, context=context), _context(deadline, correlation_id, caller)
    )
