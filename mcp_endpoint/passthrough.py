"""`/mcp/servers/<name>/`: one fleet server passed through to an agent, under its own names.

An SDK low-level `Server` per fleet server (and per event loop), served by the SDK's StreamableHTTPSessionManager
(both protocol eras, as the SDK serves them). Every request the agent makes is forwarded on the fleet's one shared
session to that server, through the fleet API (`fleet.calls.on_server` with `hub.connection(name).request(...)`):
bounded by the server's request timeout, timed, recorded with the agent's username as caller, counted in health like
any call. Nothing is renamed or rewritten: lists come from the live server (cursors passed on), results (images,
audio, embedded resources, annotations, `_meta`, structured content) go back as the server sent them, errors keep
the server's code, message and data.

What the server sends during an agent's request reaches that agent (relay.py, mcp_client/client_request_relay.py):
- progress: the agent's `progressToken` makes us ask the server for progress, and each notification is forwarded
  in order, before the result;
- log entries (`notifications/message`): to the agent whose request is in flight, at the levels it asked for
  (2026-07-28: the request's `_meta` log level, passed on; handshake era: its `logging/setLevel`, which is also
  passed on to a handshake-era server by an operator or admin: there the level is the shared session's);
- elicitation, sampling, roots: on a 2026-07-28 session they come as an `InputRequiredResult`; a 2026 agent gets it
  as its result (only the requests its declared capabilities allow) and its retry (input responses + request state)
  goes back to the server; a handshake-era agent is asked each request on its call's stream (the SDK's own
  multi-round-trip driver, with the agent as the one answering) and the server gets the answers in a retry. On a
  handshake-era session they come as requests on the shared client: relayed to the agent whose call is in flight,
  declined when calls of several agents are (the SDK does not say which call a server request belongs to);
- resource subscriptions: `resources/subscribe` (handshake-era agents) and `subscriptions/listen` (2026 agents)
  subscribe the shared session (fleet.calls' subscriptions, kept across reconnects) and every
  `notifications/resources/updated` for that URI goes to the agents that subscribed; list changes to every agent
  session seen. A URI this module subscribed is unsubscribed when no agent wants it any more; one the fleet already
  had (the pipeline's quotes) is left alone.

Who may do what: the router (asgi.py) checked Origin and the Bearer token and put the Caller in the scope; viewers
list and read (lists, resources, prompts, completions, subscriptions), operators and admins also call tools.
An unknown server name is a 404 before any session; a disabled one, one that cannot be reached now, or one that does
not answer in time gets an MCP error that says so ("exchange-delta is offline: ...").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
import mcp_types as types
from django.conf import settings
from mcp import Client, MCPError
from mcp.client._input_required import run_input_required_driver
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from fleet import calls as fleet_calls
from fleet.calls import FleetTimedOut
from mcp_client import ConnectionHub, ConnectionLayerError, Deadline, RequestContext, ServerNotification
from mcp_client.client_request_relay import RelayedCall
from mcp_client.errors import ConnectionLost, InvalidResponse, RequestTimedOut, ServerError, ServerUnavailable
from mcp_endpoint.authentication import CallerMiddleware, caller_of_request
from mcp_endpoint.relay import LOG_LEVELS, AgentLink, agent_key
from mcp_endpoint.session_managers import STOP_SECONDS, RunningSessionManager, plain_answer
from orchestrator_site.async_api import Caller
from registry import api_calls
from registry.permissions import Role

logger = logging.getLogger(__name__)

T = TypeVar("T")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# JSON-RPC codes of our own errors (the server's own errors keep theirs).
SERVER_NOT_AVAILABLE = -32000  # implementation-defined range: down, disabled, connection lost
NOT_ALLOWED = types.INVALID_REQUEST
# The notifications this module forwards to agents outside their requests.
_FORWARDED = frozenset(
    {
        "notifications/resources/updated",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
    }
)
_LIST_EVENTS: dict[str, Callable[[], ToolsListChanged | PromptsListChanged | ResourcesListChanged]] = {
    "notifications/tools/list_changed": ToolsListChanged,
    "notifications/prompts/list_changed": PromptsListChanged,
    "notifications/resources/list_changed": ResourcesListChanged,
}
# Which client capability each input request needs (an agent is asked only for what it declared).
_NEEDS = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}


# -- the endpoint and its per-loop runtimes -------------------------------------------------------------------------


class PassthroughEndpoint:
    """`/mcp/servers/<name>/` for one server name (cheap: the runtime is made for a known name only)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request (already authenticated and origin-checked by the router)."""
        server = await api_calls.servers.get(self.name)
        if server is None:
            await plain_answer(send, 404, f"Not found: no MCP server named {self.name!r} is registered.")
            return
        runtime = _runtime_for(self.name)
        await runtime.ready()
        await runtime.manager.handle_request(scope, receive, send)


def endpoint_for(name: str) -> PassthroughEndpoint:
    return PassthroughEndpoint(name)


_runtimes: dict[tuple[asyncio.AbstractEventLoop, str], _PassthroughRuntime] = {}


def _runtime_for(name: str) -> _PassthroughRuntime:
    loop = asyncio.get_running_loop()
    for stale in [key for key in _runtimes if key[0].is_closed()]:
        del _runtimes[stale]
    runtime = _runtimes.get((loop, name))
    if runtime is None:  # no await between the lookup and the insertion: first requests at once share one
        runtime = _runtimes[(loop, name)] = _PassthroughRuntime(name, loop)
    return runtime


async def shutdown() -> None:
    """Stop the pass-through runtimes of the running loop (their sessions end, fleet subscriptions made for agents
    are dropped). The router's stop calls it."""
    loop = asyncio.get_running_loop()
    mine = [key for key in _runtimes if key[0] is loop]
    runtimes = [_runtimes.pop(key) for key in mine]
    await asyncio.gather(*(runtime.stop() for runtime in runtimes), return_exceptions=True)


class _PassthroughRuntime:
    """One server's pass-through on one event loop: the SDK server, its session manager held open by a task, and the
    reader of the server's notifications on the fleet loop."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.loop = loop
        self.relay = Passthrough(name, loop)
        self.sessions = RunningSessionManager(self.relay.server, loop, what=f"the pass-through of {name!r}")
        self.manager = self.sessions.manager

    async def ready(self) -> None:
        await self.sessions.ready()

    async def stop(self) -> None:
        await self.sessions.stop()
        await self.relay.close()


# -- the pass-through of one server ---------------------------------------------------------------------------------


class Passthrough:
    """The SDK server's handlers for one fleet server, and what they share: the agents' subscriptions and log
    levels, the latest tool listing (for the 2026 wire's header validation), the notification reader."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.loop = loop
        self.bus = InMemorySubscriptionBus()
        self._tool_schemas: dict[str, dict[str, Any]] = {}
        # URI -> the handshake-era agent sessions subscribed to it; URIs we subscribed on the shared session.
        # Handshake-era agent sessions by agent_key (their Streamable HTTP session): all of them (for list changes),
        # and those subscribed to each URI.
        self._subscribers: dict[str, dict[object, ServerSession]] = {}
        self._listening: dict[str, int] = {}  # URI -> open 2026 listen streams that want it
        self._subscribed_by_us: set[str] = set()
        self._sessions: dict[object, ServerSession] = {}
        self._log_levels: dict[object, types.LoggingLevel] = {}  # agent session -> its logging/setLevel
        self._reader: concurrent.futures.Future[None] | None = None
        # Notifications on their way to the agents: the same one again meanwhile is the same news (an update is a
        # "read it again"), so it is not sent twice.
        self._pending: set[tuple[str, str]] = set()
        self._deliveries: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references to tasks
        self._listen = ListenHandler(self.bus)
        with warnings.catch_warnings():
            # logging/setLevel is deprecated on 2026-07-28 but handshake-era agents still send it.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            self.server: Server[Any] = Server(
                name,
                version="mcp-orchestrator",
                instructions=f"The MCP server {name!r} of the orchestrator's fleet, passed through as it is.",
                get_tool_input_schema=self._tool_schemas.get,
                on_list_tools=self.list_tools,
                on_call_tool=self.call_tool,
                on_list_resources=self.list_resources,
                on_list_resource_templates=self.list_resource_templates,
                on_read_resource=self.read_resource,
                on_subscribe_resource=self.subscribe,
                on_unsubscribe_resource=self.unsubscribe,
                on_subscriptions_listen=self.listen,
                on_list_prompts=self.list_prompts,
                on_get_prompt=self.get_prompt,
                on_completion=self.complete,
                on_set_logging_level=self.set_logging_level,
            )
        self.server.middleware.append(CallerMiddleware())

    # -- the fleet side -------------------------------------------------------------------------------------------

    async def upstream(
        self,
        ctx: ServerRequestContext[Any, Any],
        operation: str,
        target_name: str,
        send: Callable[[Client, Deadline], Awaitable[T]],
        *,
        link: AgentLink | None = None,
    ) -> T:
        """`send(client, deadline)` on the server's shared session, through the fleet API; our errors as MCP
        errors that say what happened. With `link`, what the server asks meanwhile goes to that agent."""
        caller = _caller(ctx)
        self._remember(ctx)
        server = await api_calls.servers.get(self.name)
        if server is None:
            raise MCPError(SERVER_NOT_AVAILABLE, f"{self.name} is no longer registered")
        if not server.enabled:
            raise MCPError(SERVER_NOT_AVAILABLE, f"{self.name} is disabled: an operator must enable it first")
        if server.target is None:
            raise MCPError(SERVER_NOT_AVAILABLE, f"{self.name} cannot be reached: {server.target_problem}")
        if not self._tool_schemas and server.tools:
            # Until an agent lists the tools here, the 2026 wire's header validation uses the latest discovery's.
            self._tool_schemas.update({tool: schema for tool, schema in server.tools.items() if schema is not None})
        deadline = Deadline.within(server.request_timeout_seconds)
        name = self.name
        relayed = (
            RelayedCall(
                agent=link.session_key,
                ask=link.ask if link.can_be_asked else None,
                tell=link.tell,
                description=f"{operation} {target_name} by {caller.username}".strip(),
            )
            if link is not None
            else None
        )

        async def work(hub: ConnectionHub, context: RequestContext) -> T:
            connection = hub.connection(name)

            async def fn(client: Client) -> T:
                return await send(client, deadline)

            if relayed is None:
                return (await connection.request(operation, target_name, fn, context=context)).result
            with connection.client_requests.in_flight(relayed):
                return (await connection.request(operation, target_name, fn, context=context)).result

        try:
            return await fleet_calls.on_server(server.target, work, deadline=deadline, caller=caller.username)
        except ConnectionLayerError as error:
            raise _as_mcp_error(name, error) from None
        except FleetTimedOut as error:
            raise MCPError(types.REQUEST_TIMEOUT, f"{name} did not answer in time: {error}") from None
        except RuntimeError as error:  # no fleet loop in this process
            raise MCPError(SERVER_NOT_AVAILABLE, f"{name} is offline: the fleet is not running ({error})") from None

    def _remember(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """Keep the handshake-era agent sessions, for list changes (2026 agents listen instead); as many as the
        endpoint has sessions at most (a session gone is forgotten when a notification to it fails)."""
        session = ctx.session
        if session.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return
        key = agent_key(ctx)
        if key not in self._sessions:
            _bounded_put(self._sessions, key, session)
            self._start_reader()

    # -- lists, reads, prompts, completions -------------------------------------------------------------------------

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        forwarded = _without_meta(params)

        async def send(client: Client, deadline: Deadline) -> types.ListToolsResult:
            return await client.session.list_tools(params=forwarded)

        result = await self.upstream(ctx, "tools/list", "", send)
        for tool in result.tools:
            self._tool_schemas[tool.name] = tool.input_schema
        return result

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        forwarded = _without_meta(params)

        async def send(client: Client, deadline: Deadline) -> types.ListResourcesResult:
            return await client.session.list_resources(params=forwarded)

        return await self.upstream(ctx, "resources/list", "", send)

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        forwarded = _without_meta(params)

        async def send(client: Client, deadline: Deadline) -> types.ListResourceTemplatesResult:
            return await client.session.list_resource_templates(params=forwarded)

        return await self.upstream(ctx, "resources/templates/list", "", send)

    async def list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        forwarded = _without_meta(params)

        async def send(client: Client, deadline: Deadline) -> types.ListPromptsResult:
            return await client.session.list_prompts(params=forwarded)

        return await self.upstream(ctx, "prompts/list", "", send)

    async def complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        forwarded = params.model_copy(update={"meta": None})

        async def send(client: Client, deadline: Deadline) -> types.CompleteResult:
            request = types.CompleteRequest(params=forwarded)
            return await client.session.send_request(request, types.CompleteResult, deadline.cap(3600.0))

        return await self.upstream(ctx, "completion/complete", forwarded.argument.name, send)

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        uri = str(params.uri)

        async def round_trip(
            responses: types.InputResponses | None, state: str | None
        ) -> types.ReadResourceResult | types.InputRequiredResult:
            async def send(client: Client, deadline: Deadline) -> types.ReadResourceResult | types.InputRequiredResult:
                return await client.session.read_resource(
                    uri,
                    input_responses=responses,
                    request_state=state,
                    meta=self._forwarded_meta(ctx, client),
                    allow_input_required=True,
                )

            return await self.upstream(ctx, "resources/read", uri, send, link=link)

        link = self._link(ctx, progress_token=None)
        try:
            return await self._resolve(ctx, link, params.input_responses, params.request_state, round_trip)
        finally:
            await link.close()

    async def get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        async def round_trip(
            responses: types.InputResponses | None, state: str | None
        ) -> types.GetPromptResult | types.InputRequiredResult:
            async def send(client: Client, deadline: Deadline) -> types.GetPromptResult | types.InputRequiredResult:
                return await client.session.get_prompt(
                    params.name,
                    params.arguments,
                    input_responses=responses,
                    request_state=state,
                    meta=self._forwarded_meta(ctx, client),
                    allow_input_required=True,
                )

            return await self.upstream(ctx, "prompts/get", params.name, send, link=link)

        link = self._link(ctx, progress_token=None)
        try:
            return await self._resolve(ctx, link, params.input_responses, params.request_state, round_trip)
        finally:
            await link.close()

    # -- tools ------------------------------------------------------------------------------------------------------

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        caller = _caller(ctx)
        if caller.role < Role.OPERATOR:
            raise MCPError(
                NOT_ALLOWED,
                f"{caller.username} is a viewer: viewers may list and read {self.name}'s tools, resources and "
                "prompts but not call its tools (an operator or an admin may)",
            )
        token = (ctx.meta or {}).get("progress_token")
        link = self._link(ctx, progress_token=token)

        async def round_trip(
            responses: types.InputResponses | None, state: str | None
        ) -> types.CallToolResult | types.InputRequiredResult:
            async def send(client: Client, deadline: Deadline) -> types.CallToolResult | types.InputRequiredResult:
                result = await client.session.call_tool(
                    params.name,
                    params.arguments,
                    read_timeout_seconds=max(0.001, deadline.remaining()),
                    progress_callback=link.progress if token is not None else None,
                    input_responses=responses,
                    request_state=state,
                    meta=self._forwarded_meta(ctx, client),
                    allow_input_required=True,
                )
                if not isinstance(result, types.CallToolResult | types.InputRequiredResult):
                    raise RuntimeError(f"the server answered with an unexpected result ({type(result).__name__})")
                return result

            return await self.upstream(ctx, "tools/call", params.name, send, link=link)

        try:
            return await self._resolve(ctx, link, params.input_responses, params.request_state, round_trip)
        finally:
            await link.close()

    async def _resolve(
        self,
        ctx: ServerRequestContext[Any, Any],
        link: AgentLink,
        responses: types.InputResponses | None,
        state: str | None,
        round_trip: Callable[[types.InputResponses | None, str | None], Awaitable[T | types.InputRequiredResult]],
    ) -> T | types.InputRequiredResult:
        """The server's answer for the agent. An `InputRequiredResult` goes to a 2026 agent as it is (less what the
        agent did not declare it can answer); for a handshake-era agent we ask it each request and retry for it."""
        first = await round_trip(responses, state)
        if not isinstance(first, types.InputRequiredResult):
            return first
        if ctx.session.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return _for_capabilities(self.name, first, ctx.session.client_capabilities)
        await link.flush()

        async def ask(key: str, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
            if not _declares(ctx.session.client_capabilities, request.method):
                return _missing_capability(self.name, [request.method]).error
            return await link.ask_here(request)

        return await run_input_required_driver(first, dispatch=ask, retry=round_trip)

    def _link(self, ctx: ServerRequestContext[Any, Any], *, progress_token: str | int | None) -> AgentLink:
        return AgentLink(ctx, progress_token=progress_token, log_level=self._log_levels.get(agent_key(ctx)))

    def _forwarded_meta(self, ctx: ServerRequestContext[Any, Any], client: Client) -> types.RequestParamsMeta | None:
        """The agent's log level on a 2026 session (there, log entries are sent only to requests that ask)."""
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return None
        agent_meta: Mapping[str, Any] = ctx.meta or {}
        if ctx.session.protocol_version in MODERN_PROTOCOL_VERSIONS:
            level = agent_meta.get(types.LOG_LEVEL_META_KEY)
        else:  # a handshake-era agent gets every level unless it set one
            level = self._log_levels.get(agent_key(ctx), "debug")
        return {types.LOG_LEVEL_META_KEY: level} if level in LOG_LEVELS else None  # type: ignore[return-value]

    # -- logging ----------------------------------------------------------------------------------------------------

    async def set_logging_level(
        self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        if len(self._log_levels) >= settings.MCP_ENDPOINT_MAX_SESSIONS:
            self._log_levels.pop(next(iter(self._log_levels)))  # the oldest agent's: bounded like the sessions
        self._log_levels[agent_key(ctx)] = params.level  # what this agent is sent (relay.py filters by it)
        if _caller(ctx).role < Role.OPERATOR:
            # On a handshake-era server the level is the shared session's, everyone's: a viewer's stays its own.
            return types.EmptyResult()

        async def send(client: Client, deadline: Deadline) -> types.EmptyResult:
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                return types.EmptyResult()  # no setLevel there: the level travels with each request
            return await client.session.set_logging_level(params.level)  # pyright: ignore[reportDeprecated]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            return await self.upstream(ctx, "logging/setLevel", params.level, send)

    # -- subscriptions ----------------------------------------------------------------------------------------------

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        await self._want(ctx, uri)
        _bounded_put(self._subscribers.setdefault(uri, {}), agent_key(ctx), ctx.session)
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        self._subscribers.get(uri, {}).pop(agent_key(ctx), None)
        await self._release(uri)
        return types.EmptyResult()

    async def listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """2026 agents' `subscriptions/listen`: the SDK's handler on our bus, with the URIs subscribed upstream
        while the stream is open."""
        uris = [str(uri) for uri in (params.notifications.resource_subscriptions or [])]
        wanted: list[str] = []
        self._start_reader()
        try:
            for uri in uris:
                await self._want(ctx, uri)
                self._listening[uri] = self._listening.get(uri, 0) + 1
                wanted.append(uri)
            return await self._listen(ctx, params)
        finally:
            # Also when the agent goes away (the stream's request cancelled): the shared session's subscription
            # made for it is dropped all the same.
            with anyio.move_on_after(STOP_SECONDS, shield=True):
                for uri in wanted:
                    self._listening[uri] -= 1
                    await self._release(uri)

    async def _want(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        """Subscribe the shared session to `uri` (through the fleet API), remembering whether it already was."""
        caller = _caller(ctx)
        self._start_reader()
        server = await api_calls.servers.get(self.name)
        if server is None or not server.enabled or server.target is None:
            raise MCPError(SERVER_NOT_AVAILABLE, f"{self.name} cannot take subscriptions now (disabled or unusable)")
        name = self.name

        async def work(hub: ConnectionHub, context: RequestContext) -> bool:
            already = uri in hub.connection(name).subscriptions
            await hub.subscribe_resources(name, [uri])
            return already

        try:
            already = await fleet_calls.on_server(
                server.target,
                work,
                deadline=Deadline.within(server.request_timeout_seconds),
                caller=caller.username,
            )
        except ConnectionLayerError as error:
            raise _as_mcp_error(name, error) from None
        if not already:
            self._subscribed_by_us.add(uri)

    async def _release(self, uri: str) -> None:
        if self._subscribers.get(uri) or self._listening.get(uri) or uri not in self._subscribed_by_us:
            return
        self._subscribed_by_us.discard(uri)
        try:
            await fleet_calls.unsubscribe_resources(self.name, [uri])
        except (ConnectionLayerError, RuntimeError) as error:
            logger.info("pass-through %r: could not unsubscribe %s: %s", self.name, uri, error)

    # -- the server's notifications, outside requests -----------------------------------------------------------------

    def _start_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            return
        try:
            self._reader = fleet_calls.fleet_runtime().submit(self._read_notifications())
        except RuntimeError as error:
            logger.info("pass-through %r: no fleet loop to read notifications from (%s)", self.name, error)

    async def _read_notifications(self) -> None:
        """On the fleet loop: the server's resource updates and list changes, handed to the web loop."""
        name = self.name
        subscription = fleet_calls.subscribe_notifications(
            name=f"mcp-passthrough:{name}",
            maxsize=1_000,
            accept=lambda notification: notification.server == name and notification.method in _FORWARDED,
        )
        with subscription:
            async for notification in subscription:
                try:
                    self.loop.call_soon_threadsafe(self._deliver_soon, notification)
                except RuntimeError:  # the web loop is closed
                    return

    def _deliver_soon(self, notification: ServerNotification) -> None:
        key = (notification.method, str(notification.params.get("uri", "")))
        if key in self._pending:
            return
        self._pending.add(key)
        task = self.loop.create_task(self._deliver(notification, key), name=f"mcp-passthrough-notify:{self.name}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, notification: ServerNotification, key: tuple[str, str]) -> None:
        try:
            await self._send_to_agents(notification)
        finally:
            self._pending.discard(key)

    async def _send_to_agents(self, notification: ServerNotification) -> None:
        method = notification.method
        if method == "notifications/resources/updated":
            uri = str(notification.params.get("uri", ""))
            await self.bus.publish(ResourceUpdated(uri=uri))  # 2026 agents listening for it
            sessions = list(self._subscribers.get(uri, {}).items())
            wire: types.ServerNotification = types.ResourceUpdatedNotification(
                params=types.ResourceUpdatedNotificationParams(uri=uri)
            )
        else:
            await self.bus.publish(_LIST_EVENTS[method]())
            if method == "notifications/tools/list_changed":
                self._tool_schemas.clear()
            sessions = list(self._sessions.items())
            wire = _list_changed(method)
        for key, session in sessions:  # handshake-era agents, on their sessions' standalone streams
            try:
                await session.send_notification(wire)
            except Exception:  # noqa: BLE001 - a session gone: forget it
                self._forget(key)

    def _forget(self, key: object) -> None:
        self._sessions.pop(key, None)
        for sessions in self._subscribers.values():
            sessions.pop(key, None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        for uri in list(self._subscribed_by_us):
            self._subscribers.pop(uri, None)
            self._listening.pop(uri, None)
            await self._release(uri)


# -- small pieces -----------------------------------------------------------------------------------------------------


def _caller(ctx: ServerRequestContext[Any, Any]) -> Caller:
    caller = caller_of_request(ctx)
    if caller is None:  # the router always sets it: a request that did not come through it is refused
        raise MCPError(NOT_ALLOWED, "no authenticated caller")
    return caller


def _bounded_put(sessions: dict[object, ServerSession], key: object, session: ServerSession) -> None:
    """Keep a session, as many as the endpoint may have at most (the oldest let go first)."""
    if len(sessions) >= settings.MCP_ENDPOINT_MAX_SESSIONS:
        sessions.pop(next(iter(sessions)))
    sessions[key] = session


def _without_meta(params: types.PaginatedRequestParams | None) -> types.PaginatedRequestParams | None:
    return None if params is None else types.PaginatedRequestParams(cursor=params.cursor)


def _list_changed(method: str) -> types.ServerNotification:
    if method == "notifications/tools/list_changed":
        return types.ToolListChangedNotification()
    if method == "notifications/prompts/list_changed":
        return types.PromptListChangedNotification()
    return types.ResourceListChangedNotification()


def _declares(capabilities: types.ClientCapabilities | None, method: str) -> bool:
    needed = _NEEDS.get(method)
    return capabilities is not None and needed is not None and getattr(capabilities, needed, None) is not None


def _for_capabilities(
    name: str, result: types.InputRequiredResult, capabilities: types.ClientCapabilities | None
) -> types.InputRequiredResult:
    """Only the input requests the agent declared it can answer (the server saw the fleet's capabilities, which
    declare all three so that any agent can be served). None left: the error the server owed such an agent."""
    requests = result.input_requests or {}
    kept = {key: request for key, request in requests.items() if _declares(capabilities, request.method)}
    if len(kept) == len(requests):
        return result
    if not kept:
        raise _missing_capability(name, [request.method for request in requests.values()])
    return result.model_copy(update={"input_requests": kept})


def _missing_capability(name: str, methods: list[str]) -> MCPError:
    needed = sorted({_NEEDS[method] for method in methods if method in _NEEDS})
    return MCPError(
        types.MISSING_REQUIRED_CLIENT_CAPABILITY,
        f"{name} asks the client for {', '.join(needed)}, which this client did not declare",
        {"requiredCapabilities": {capability: {} for capability in needed}},
    )


def _as_mcp_error(name: str, error: ConnectionLayerError) -> MCPError:
    """The fleet's errors in words an agent can act on; the server's own JSON-RPC errors unchanged."""
    if isinstance(error, ServerError):
        return MCPError(error.code, error.message, error.data)
    if isinstance(error, ServerUnavailable):
        return MCPError(SERVER_NOT_AVAILABLE, f"{name} is offline: {error.reason}")
    if isinstance(error, RequestTimedOut):
        return MCPError(types.REQUEST_TIMEOUT, f"{name} did not answer within {round(error.timeout, 1):g} s")
    if isinstance(error, ConnectionLost):
        return MCPError(SERVER_NOT_AVAILABLE, f"{name}: the connection was lost ({error.reason})")
    if isinstance(error, InvalidResponse):
        return MCPError(types.INTERNAL_ERROR, f"{name} answered something invalid: {error.reason}")
    return MCPError(types.INTERNAL_ERROR, f"{name}: {error}")
