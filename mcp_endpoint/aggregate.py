"""`/mcp/`: the whole fleet as one MCP server, on the SDK's low-level `Server` (served by the session manager that
mcp_endpoint/asgi.py runs; both protocol eras as the SDK serves them).

What it offers (mcp_endpoint/fleet_catalogue.py, from each server's latest discovery; names per
mcp_endpoint/naming.py):
- tools: the tools of every enabled server that can answer now (online, degraded) as `<server>__<tool>`, with the
  upstream's description, input and output schemas and annotations unchanged, plus the virtual tools of
  mcp_endpoint/virtual_tools.py (fused__, balanced__, coordinator__), built from every enabled server whatever its
  status (a replica going down must not take balanced__ away when failover matters; fusion and the balancer leave
  it out of the run and report it); a server named like a virtual prefix (`fused`, ...) would collide and is left
  out;
- resources and resource templates under `mcp-orchestrator://<server>/<its own URI>`; prompts as `<server>__<name>`.
Lists longer than PAGE_SIZE come in pages (an opaque cursor).

A namespaced call goes the way `POST /api/servers/<name>/call/` goes (registry/api_calls.py): the server's definition
from the serving path's cache, the arguments checked against the tool's input schema first (registry/tool_arguments.py;
each wrong field named), then `fleet.calls.on_server` with the caller's username, under the server's request timeout.
So it is recorded (CallRecord, with the token's user as caller) and counted in health and the balancer like every
call. The result keeps the upstream's content exactly (content items with their annotations, structuredContent,
isError, _meta). Failures a model can act on are `isError` results that say what happened: bad arguments, the
server down ("exchange-delta is offline: ..."), a timeout, the operator role missing (viewers list and read, they
do not call). An unknown tool is a JSON-RPC error (-32602), as the spec has it. Resource reads, prompts and
completions (viewers may: they read) go the same way to the server (its own URI or name) and answer JSON-RPC errors
naming the server when they fail.

list_changed: `ListChangedNotifier` hears that the catalogue may have changed (fleet_catalogue.watch_changes: the
registry's announcements, a discovery's new snapshot, an edit), waits LIST_CHANGED_DEBOUNCE_SECONDS, rebuilds the
lists a client would get and compares them with the last ones; for each list that differs it tells every open
session: 2025-era sessions on their standalone GET stream (`notifications/tools/list_changed`, ...), 2026-era clients
through `subscriptions/listen` (the SDK's ListenHandler and its in-memory bus). It also looks every
LIST_CHANGED_POLL_SECONDS, for changes made in another process (`serve --web` beside a `fleetworker`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp import MCPError
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ToolsListChanged,
)
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from fleet import calls as fleet_calls
from mcp_client import ConnectionLayerError, Deadline, RequestTimedOut, ServerError, ServerUnavailable
from mcp_endpoint import naming
from mcp_endpoint.authentication import CallerMiddleware, current_caller
from mcp_endpoint.fleet_catalogue import Catalogue, OfferedServer, current_catalogue, watch_changes
from orchestrator_site.async_api import Caller
from orchestrator_site.database_access import with_database
from registry.api_calls import CallableServer, servers
from registry.models import Server as ServerRow
from registry.permissions import Role
from registry.prompt_arguments import prompt_argument_errors
from registry.tool_arguments import argument_errors

logger = logging.getLogger(__name__)

SERVER_NAME = "mcp-orchestrator"
INSTRUCTIONS = (
    "The MCP Orchestrator's fleet as one server. Tools are named <server>__<tool>; fused__<tool> asks every server of "
    "a type at once and fuses the answers, balanced__<tool> calls the best one with failover, coordinator__arbitrage "
    "ranks cross-exchange opportunities. Resources are mcp-orchestrator://<server>/<its own URI>."
)
# A page of a list; more comes with the next cursor.
PAGE_SIZE = 500
# At most one notification per list this often; changes in between are told once.
LIST_CHANGED_DEBOUNCE_SECONDS = 0.5
# How often the notifier looks without being told (changes made in another process).
LIST_CHANGED_POLL_SECONDS = 10.0
# A completion answer: at most this many values (the spec's limit), each cut to this length.
MAX_COMPLETION_VALUES = 100
MAX_COMPLETION_CHARS = 1_000
# How long telling one 2025-era session of a change may take before it is skipped (its stream is not being read).
NOTIFY_SECONDS_PER_SESSION = 1.0
# A virtual tool's budget (fusion, failover, the arbitrage analysis): MCP requests carry no deadline of their own.
VIRTUAL_TOOL_SECONDS = 30.0

_Item = TypeVar("_Item", bound=BaseModel)


def _virtual_tools_module() -> ModuleType | None:
    """mcp_endpoint/virtual_tools.py, written beside this module; tolerated absent."""
    try:
        return importlib.import_module("mcp_endpoint.virtual_tools")
    except ModuleNotFoundError as error:
        if error.name != "mcp_endpoint.virtual_tools":
            raise
        return None


_collisions_logged: set[str] = set()


def _collides_with_virtual(server: str, virtual: ModuleType | None) -> bool:
    """A server named like a virtual prefix (`fused`, `balanced`, `coordinator`) would shadow those tools: it is left
    out of /mcp/ (still served at /mcp/servers/<name>/), said once per name and process."""
    collides = virtual is not None and virtual.is_virtual(naming.scoped_name(server, "x"))
    if collides and server not in _collisions_logged:
        _collisions_logged.add(server)
        logger.warning(
            "MCP endpoint: server %r is left out of /mcp/: its tools would be named like the virtual %s__ tools "
            "(it is still served at /mcp/servers/%s/)",
            server,
            server,
            server,
        )
    return collides


# -- the lists ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lists:
    """What a client sees, built once per catalogue (the catalogue tuple is replaced whenever it changes)."""

    tools: tuple[types.Tool, ...]
    resources: tuple[types.Resource, ...]
    resource_templates: tuple[types.ResourceTemplate, ...]
    prompts: tuple[types.Prompt, ...]
    offered: dict[str, OfferedServer]
    tool_index: dict[tuple[str, str], dict[str, Any]]  # (server, its tool name) -> the tool as the server lists it

    def fingerprints(self) -> dict[str, str]:
        """One digest per list family, to tell which changed (templates count as resources)."""

        def digest(*items: Sequence[BaseModel]) -> str:
            dumped = [
                item.model_dump(mode="json", by_alias=True, exclude_none=True) for group in items for item in group
            ]
            return json.dumps(dumped, sort_keys=True)

        return {
            "tools": digest(self.tools),
            "resources": digest(self.resources, self.resource_templates),
            "prompts": digest(self.prompts),
        }


def _validated(model: type[_Item], raw: dict[str, Any], server: str, what: str) -> _Item | None:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        # The server's list passed discovery's bounds but does not fit the protocol's model: left out, said each time
        # the lists are built (the server is untrusted; its text is not repeated here).
        logger.warning(
            "MCP endpoint: %s of %r left out of /mcp/: %d validation errors", what, server, error.error_count()
        )
        return None


def _build_lists(catalogue: Catalogue) -> _Lists:
    virtual = _virtual_tools_module()
    addressable = [
        server
        for server in catalogue.offered
        if naming.addressable(server.name) and not _collides_with_virtual(server.name, virtual)
    ]
    tools: list[types.Tool] = []
    resources: list[types.Resource] = []
    templates: list[types.ResourceTemplate] = []
    prompts: list[types.Prompt] = []
    for server in addressable:
        for raw in server.tools:
            tool = _validated(
                types.Tool,
                {**raw, "name": naming.scoped_name(server.name, str(raw.get("name")))},
                server.name,
                "a tool",
            )
            if tool is not None:
                tools.append(tool)
        for raw in server.resources:
            uri = naming.scoped_uri(server.name, str(raw.get("uri")))
            resource = _validated(types.Resource, {**raw, "uri": uri}, server.name, "a resource")
            if resource is not None:
                resources.append(resource)
        for raw in server.resource_templates:
            uri_template = naming.scoped_uri(server.name, str(raw.get("uriTemplate")))
            template = _validated(
                types.ResourceTemplate, {**raw, "uriTemplate": uri_template}, server.name, "a template"
            )
            if template is not None:
                templates.append(template)
        for raw in server.prompts:
            prompt = _validated(
                types.Prompt,
                {**raw, "name": naming.scoped_name(server.name, str(raw.get("name")))},
                server.name,
                "a prompt",
            )
            if prompt is not None:
                prompts.append(prompt)
    if virtual is not None:
        try:
            tools.extend(virtual.virtual_tools(list(catalogue.enabled)))
        except Exception:
            logger.exception("MCP endpoint: building the virtual tools failed; /mcp/ lists the servers' own tools")
    return _Lists(
        tools=tuple(tools),
        resources=tuple(resources),
        resource_templates=tuple(templates),
        prompts=tuple(prompts),
        offered={server.name: server for server in addressable},
        tool_index={(server.name, str(raw.get("name"))): raw for server in addressable for raw in server.tools},
    )


class _ListsCache:
    """The lists of the latest catalogue: rebuilt only when fleet_catalogue hands out a new catalogue."""

    def __init__(self) -> None:
        self._built: tuple[Catalogue, _Lists] | None = None

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """A namespaced tool's input schema from the lists built last (sync, no I/O): what the SDK's 2026-era
        handler checks `Mcp-Param-*` headers against before a call. Without it, the SDK lists every tool (our
        whole tools/list handler) on each call to find one schema. None (the SDK then skips the header check):
        a virtual tool, or a tool not in the last lists; the call itself still checks its arguments."""
        built = self._built
        scoped = naming.split_scoped_name(name)
        if built is None or scoped is None:
            return None
        raw = built[1].tool_index.get((scoped.server, scoped.name))
        schema = raw.get("inputSchema") if raw is not None else None
        return schema if isinstance(schema, dict) else None

    async def get(self) -> _Lists:
        catalogue = await current_catalogue()
        built = self._built
        if built is not None and built[0] is catalogue:
            return built[1]
        lists = _build_lists(catalogue)
        self._built = (catalogue, lists)
        return lists


def _page(items: Sequence[_Item], params: types.PaginatedRequestParams | None) -> tuple[list[_Item], str | None]:
    start = 0
    cursor = params.cursor if params is not None else None
    if cursor:
        try:
            start = int(base64.urlsafe_b64decode(cursor.encode()).decode())
        except (ValueError, UnicodeDecodeError) as error:
            raise MCPError(INVALID_PARAMS, "Invalid cursor: pass back the nextCursor of the previous page.") from error
        if start < 0:
            raise MCPError(INVALID_PARAMS, "Invalid cursor: pass back the nextCursor of the previous page.")
    end = start + PAGE_SIZE
    next_cursor = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return list(items[start:end]), next_cursor


# -- calls -------------------------------------------------------------------------------------------------------


def _error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _why_not_offered(name: str) -> str:
    row = ServerRow.objects.filter(name=name).values("enabled", "status", "status_reason").first()
    if row is None:
        return f"There is no server named {name!r}."
    if not row["enabled"]:
        return f"{name} is disabled."
    reason = f": {row['status_reason']}" if row["status_reason"] else ""
    return f"{name} is {row['status']}{reason}"


async def _callable_server(name: str) -> CallableServer:
    """The server's definition from the serving path's cache (the one the REST API's calls use)."""
    server = await servers.get(name)
    if server is None:
        raise _NotOffered(f"There is no server named {name!r}.")
    if not server.enabled:
        raise _NotOffered(f"{name} is disabled.")
    if server.target is None:
        raise _NotOffered(f"{name} cannot be reached as registered: {server.target_problem}")
    return server


class _NotOffered(Exception):
    """The server named is not one /mcp/ can reach now (the message says why)."""


async def _offered(lists: _Lists, name: str) -> OfferedServer:
    server = lists.offered.get(name)
    if server is None:
        raise _NotOffered(await with_database(_why_not_offered, name))
    return server


def _failure_text(error: ConnectionLayerError) -> str:
    if isinstance(error, ServerUnavailable):
        return f"{error.key} is offline: {error.reason}"
    if isinstance(error, RequestTimedOut):
        return f"{error.key} did not answer in time: {error}"
    return str(error)


def _tool_result(server: str, result: Any) -> types.CallToolResult:
    """The upstream's result as it sent it (fleet.calls keeps the wire dicts)."""
    wire: dict[str, Any] = {"content": result.content, "isError": result.is_error}
    if result.structured_content is not None:
        wire["structuredContent"] = result.structured_content
    if result.meta:
        wire["_meta"] = result.meta
    try:
        return types.CallToolResult.model_validate(wire)
    except ValidationError as error:
        return _error_result(
            f"{server} answered a result that does not fit the protocol ({error.error_count()} errors)."
        )


async def _call_namespaced(lists: _Lists, caller: Caller, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    scoped = naming.split_scoped_name(name)
    if scoped is None:
        raise MCPError(INVALID_PARAMS, f"Unknown tool: {name!r}. Tools are named <server>__<tool>.")
    try:
        offered = await _offered(lists, scoped.server)
    except _NotOffered as refusal:
        return _error_result(str(refusal))
    tool = lists.tool_index.get((offered.name, scoped.name))
    if tool is None:
        raise MCPError(INVALID_PARAMS, f"Unknown tool: {scoped.server} has no tool {scoped.name!r}.")
    if caller.role < Role.OPERATOR:
        return _error_result(f"Calling tools needs the operator role; {caller.username} may list and read only.")
    problems = argument_errors(tool.get("inputSchema"), arguments)
    if problems:
        named = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in problems.items())
        return _error_result(f"Invalid arguments for {name}: {named}")
    try:
        server = await _callable_server(scoped.server)
    except _NotOffered as refusal:
        return _error_result(str(refusal))
    deadline = Deadline.within(server.request_timeout_seconds)
    try:
        answer = await fleet_calls.on_server(
            server.target,  # type: ignore[arg-type]  # checked by _callable_server
            lambda hub, context: hub.call_tool(scoped.server, scoped.name, arguments, context=context),
            deadline=deadline,
            caller=caller.username,
        )
    except ConnectionLayerError as error:
        return _error_result(_failure_text(error))
    except fleet_calls.FleetTimedOut:
        return _error_result(f"{scoped.server} did not answer in time ({server.request_timeout_seconds:g}s).")
    return _tool_result(scoped.server, answer.result)


async def _ask_for_read(server_name: str, caller: Caller, work: Callable[[Any, Any], Any], what: str) -> Any:
    """Run a read (resource, prompt) on the server for the caller; MCP errors naming the server on failure."""
    try:
        server = await _callable_server(server_name)
    except _NotOffered as refusal:
        raise MCPError(INVALID_PARAMS, str(refusal)) from None
    deadline = Deadline.within(server.request_timeout_seconds)
    try:
        return await fleet_calls.on_server(
            server.target,  # type: ignore[arg-type]
            work,
            deadline=deadline,
            caller=caller.username,
        )
    except ServerError as error:
        raise MCPError(error.code, f"{server_name}: {what} failed: {error.message}") from None
    except ConnectionLayerError as error:
        raise MCPError(INTERNAL_ERROR, _failure_text(error)) from None
    except fleet_calls.FleetTimedOut:
        raise MCPError(INTERNAL_ERROR, f"{server_name} did not answer in time.") from None


# -- the server --------------------------------------------------------------------------------------------------


class _OpenSessions:
    """The 2025-era connections of this endpoint, for list_changed on their standalone streams. Weak: a session that
    ends leaves by itself."""

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()

    def note(self, ctx: ServerRequestContext[Any, Any]) -> None:
        # The SDK gives a handler the per-request ServerSession; the Connection behind it is the session's own.
        connection = getattr(ctx.session, "_connection", None)
        if isinstance(connection, Connection) and connection.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._connections.add(connection)

    async def notify(self, methods: Sequence[str]) -> None:
        for connection in list(self._connections):
            if not connection.has_standalone_channel:
                continue
            # A client that stopped reading its stream must not hold up the others' notifications.
            with anyio.move_on_after(NOTIFY_SECONDS_PER_SESSION):
                for method in methods:
                    await connection.notify(method, None)  # never raises: a closed stream drops it


class _SessionTracker:
    """SDK ServerMiddleware: notes each request's connection in `_OpenSessions`."""

    def __init__(self, sessions: _OpenSessions) -> None:
        self.sessions = sessions

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        self.sessions.note(ctx)
        return await call_next(ctx)


_NOTIFICATIONS_2025 = {
    "tools": "notifications/tools/list_changed",
    "resources": "notifications/resources/list_changed",
    "prompts": "notifications/prompts/list_changed",
}
_EVENTS_2026 = {"tools": ToolsListChanged, "resources": ResourcesListChanged, "prompts": PromptsListChanged}


class ListChangedNotifier:
    """Tells open sessions when a list they were given changed (see the module docstring)."""

    def __init__(self, lists: _ListsCache, sessions: _OpenSessions, bus: InMemorySubscriptionBus) -> None:
        self.lists = lists
        self.sessions = sessions
        self.bus = bus
        self.notified = 0  # notifications sent (per list), for tests and diagnostics

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def may_have_changed() -> None:  # any thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
                loop.call_soon_threadsafe(wake.set)

        unwatch = watch_changes(may_have_changed)
        task = loop.create_task(self._watch(wake), name="mcp-endpoint-list-changed")
        try:
            yield
        finally:
            unwatch()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self, wake: asyncio.Event) -> None:
        known: dict[str, str] | None = None
        while True:
            try:
                if known is None:
                    known = (await self.lists.get()).fingerprints()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), LIST_CHANGED_POLL_SECONDS)
                await asyncio.sleep(LIST_CHANGED_DEBOUNCE_SECONDS)
                wake.clear()
                current = (await self.lists.get()).fingerprints()
                changed = [family for family, digest in current.items() if known.get(family) != digest]
                known = current
                if changed:
                    await self._tell(changed)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("MCP endpoint: the list_changed notifier failed; it looks again shortly")
                await asyncio.sleep(LIST_CHANGED_POLL_SECONDS)

    async def _tell(self, families: Sequence[str]) -> None:
        logger.info("MCP endpoint: %s changed; telling the open sessions", ", ".join(families))
        await self.sessions.notify([_NOTIFICATIONS_2025[family] for family in families])
        for family in families:
            await self.bus.publish(_EVENTS_2026[family]())
        self.notified += len(families)


class AggregateServer(Server[dict[str, Any]]):
    """The low-level Server, announcing list_changed to 2025-era clients (the session manager initialises sessions
    with the server's default options, whose notification flags are off)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def build_aggregate_server() -> AggregateServer:
    """A new `/mcp/` server (one per session manager; the router builds it)."""
    lists = _ListsCache()
    sessions = _OpenSessions()
    bus = InMemorySubscriptionBus()
    listen = ListenHandler(bus)
    notifier = ListChangedNotifier(lists, sessions, bus)

    @contextlib.asynccontextmanager
    async def lifespan(_server: Server[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async with notifier.running():
            try:
                yield {"notifier": notifier}
            finally:
                listen.close()

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        page, cursor = _page((await lists.get()).tools, params)
        return types.ListToolsResult(tools=page, next_cursor=cursor)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = current_caller()
        arguments = dict(params.arguments or {})
        virtual = _virtual_tools_module()
        if virtual is not None and virtual.is_virtual(params.name):
            if caller.role < Role.OPERATOR:
                return _error_result(
                    f"Calling tools needs the operator role; {caller.username} may list and read only."
                )
            return await virtual.call_virtual_tool(
                params.name, arguments, caller, deadline=Deadline.within(VIRTUAL_TOOL_SECONDS)
            )
        return await _call_namespaced(await lists.get(), caller, params.name, arguments)

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        page, cursor = _page((await lists.get()).resources, params)
        return types.ListResourcesResult(resources=page, next_cursor=cursor)

    async def list_resource_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        page, cursor = _page((await lists.get()).resource_templates, params)
        return types.ListResourceTemplatesResult(resource_templates=page, next_cursor=cursor)

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        caller = current_caller()
        scoped = naming.split_scoped_uri(str(params.uri))
        if scoped is None:
            raise MCPError(
                INVALID_PARAMS, f"Unknown resource {params.uri!r}: resources are mcp-orchestrator://<server>/<uri>."
            )
        try:
            await _offered(await lists.get(), scoped.server)
        except _NotOffered as refusal:
            raise MCPError(INVALID_PARAMS, str(refusal)) from None
        answer = await _ask_for_read(
            scoped.server,
            caller,
            lambda hub, context: hub.read_resource(scoped.server, scoped.name, context=context),
            f"reading {scoped.name!r}",
        )
        contents = []
        for item in answer.result.contents:
            item = dict(item)
            if isinstance(item.get("uri"), str):
                item["uri"] = naming.scoped_uri(scoped.server, item["uri"])
            contents.append(item)
        return types.ReadResourceResult.model_validate({"contents": contents})

    async def list_prompts(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        page, cursor = _page((await lists.get()).prompts, params)
        return types.ListPromptsResult(prompts=page, next_cursor=cursor)

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        caller = current_caller()
        scoped = naming.split_scoped_name(params.name)
        if scoped is None:
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {params.name!r}. Prompts are named <server>__<prompt>.")
        try:
            offered = await _offered(await lists.get(), scoped.server)
        except _NotOffered as refusal:
            raise MCPError(INVALID_PARAMS, str(refusal)) from None
        declared = next((raw for raw in offered.prompts if raw.get("name") == scoped.name), None)
        if declared is None:
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {scoped.server} has no prompt {scoped.name!r}.")
        arguments = dict(params.arguments or {})
        problems = prompt_argument_errors(declared.get("arguments") or [], arguments)
        if problems:
            named = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in problems.items())
            raise MCPError(INVALID_PARAMS, f"Invalid arguments for {params.name}: {named}")
        answer = await _ask_for_read(
            scoped.server,
            caller,
            lambda hub, context: fleet_calls.prompt_on(hub, scoped.server, scoped.name, arguments, context),
            f"prompt {scoped.name!r}",
        )
        prompt = answer.result
        wire: dict[str, Any] = {"messages": prompt.messages}
        if prompt.description:
            wire["description"] = prompt.description
        return types.GetPromptResult.model_validate(wire)

    async def complete(
        ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        caller = current_caller()
        reference = params.ref
        upstream_ref: types.PromptReference | types.ResourceTemplateReference
        if isinstance(reference, types.PromptReference):
            scoped = naming.split_scoped_name(reference.name)
            upstream_ref = types.PromptReference(name=scoped.name) if scoped else reference
        else:
            scoped = naming.split_scoped_uri(reference.uri)
            upstream_ref = types.ResourceTemplateReference(uri=scoped.name) if scoped else reference
        if scoped is None:
            raise MCPError(
                INVALID_PARAMS,
                "Unknown reference: prompts are <server>__<prompt>, templates are "
                "mcp-orchestrator://<server>/<template>.",
            )
        try:
            await _offered(await lists.get(), scoped.server)
        except _NotOffered as refusal:
            raise MCPError(INVALID_PARAMS, str(refusal)) from None
        argument = {"name": params.argument.name, "value": params.argument.value}
        context_arguments = params.context.arguments if params.context else None

        async def ask(hub: Any, context: Any) -> Any:
            return await hub.connection(scoped.server).request(
                "completion/complete",
                scoped.name,
                lambda client: client.complete(upstream_ref, argument, context_arguments),
                context=context,
            )

        answer = await _ask_for_read(scoped.server, caller, ask, f"completing {params.argument.name!r}")
        completion = answer.result.completion
        # The spec's bound on one answer; the server is untrusted.
        values = [str(value)[:MAX_COMPLETION_CHARS] for value in completion.values[:MAX_COMPLETION_VALUES]]
        return types.CompleteResult(
            completion=types.Completion(values=values, total=completion.total, has_more=completion.has_more)
        )

    server = AggregateServer(
        SERVER_NAME,
        version="1",
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        get_tool_input_schema=lists.input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_completion=complete,
        on_subscriptions_listen=listen,
    )
    server.middleware.extend([CallerMiddleware(), _SessionTracker(sessions)])
    return server
