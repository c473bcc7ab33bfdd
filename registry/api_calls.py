"""The REST API's serving path: `POST /api/servers/<name>/call/`, `/read/` and `/prompt/`, answered on the event loop.

A call needs the server's definition (to open its session on demand) and the tool's input schema (to name wrong
arguments before anything is sent). Both come from a per-process cache (`API_SERVER_CACHE_SECONDS`, cleared in this
process whenever a server or a capability snapshot is saved or deleted), so a call makes no database round trip;
the fleet call is awaited on the fleet loop through the fleet API, and its record is written later, in batches, by
the supervisor's call recorder (the outcome stream), with the caller's name.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status

from fleet import calls as fleet_calls
from mcp_client import ConnectionLayerError, Deadline, RequestTimedOut, ServerTarget, ServerUnavailable
from mcp_client.in_flight import CallCancelled, CancelResult, DuplicateCall
from orchestrator_site.async_api import AsyncAPIView, Caller, json_answer
from orchestrator_site.database_access import with_database
from registry.models import CapabilitySnapshot, Server
from registry.permissions import Role
from registry.prompt_arguments import prompt_argument_errors
from registry.selectors import known_prompts_message, known_tools_message, prompt_arguments_of, tool_input_schemas
from registry.serializers import (
    CallOutcomeSerializer,
    FleetErrorSerializer,
    ResourceReadRequestSerializer,
    ResourceReadResponseSerializer,
    ToolCallRequestSerializer,
    ToolCallResponseSerializer,
)
from registry.shared_loads import SharedLoads
from registry.tool_arguments import argument_errors

FLEET_ERRORS = {
    400: OpenApiTypes.OBJECT,
    409: FleetErrorSerializer,
    403: OpenApiTypes.OBJECT,
    404: OpenApiTypes.OBJECT,
    502: FleetErrorSerializer,
    503: FleetErrorSerializer,
    504: FleetErrorSerializer,
}


@dataclass(frozen=True)
class CallableServer:
    """What the serving path needs of a server row and its latest discovery."""

    name: str
    enabled: bool
    target: ServerTarget | None  # None when the stored definition cannot be used (the call then says why)
    target_problem: str
    request_timeout_seconds: float
    tools: dict[str, dict[str, Any] | None] | None  # tool name -> input schema; None before the first discovery
    prompts: dict[str, list[dict[str, Any]]] | None = None  # prompt name -> declared arguments; None likewise


def _load(name: str) -> CallableServer | None:
    server = Server.objects.filter(name=name).first()
    if server is None:
        return None
    try:
        target, problem = fleet_calls.server_target(server), ""
    except ValueError as error:
        target, problem = None, str(error)
    return CallableServer(
        name=server.name,
        enabled=server.enabled,
        target=target,
        target_problem=problem,
        request_timeout_seconds=server.request_timeout_seconds,
        tools=tool_input_schemas(server),
        prompts=prompt_arguments_of(server),
    )


class _ServerCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[CallableServer | None, float]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._loads: SharedLoads[str, CallableServer | None] = SharedLoads()

    async def get(self, name: str) -> CallableServer | None:
        entry = self._entries.get(name)
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        return await self._loads.load(name, lambda: self._load(name))

    async def _load(self, name: str) -> CallableServer | None:
        generation = self._generation
        loaded = await with_database(_load, name)
        with self._lock:
            # A change while we loaded may not be in what we read: use it for this call, keep it for none.
            if generation == self._generation:
                if len(self._entries) >= 10_000:
                    self._entries.clear()
                self._entries[name] = (loaded, time.monotonic() + settings.API_SERVER_CACHE_SECONDS)
        return loaded

    def clear(self, **_: Any) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()


servers = _ServerCache()
for _model in (Server, CapabilitySnapshot):
    post_save.connect(servers.clear, sender=_model, dispatch_uid=f"serving-cache-save-{_model.__name__}")
    post_delete.connect(servers.clear, sender=_model, dispatch_uid=f"serving-cache-delete-{_model.__name__}")


def _fleet_error(error: ConnectionLayerError) -> JsonResponse:
    """A failed MCP request as an HTTP answer: 503 when the server cannot be reached now, 504 when it did not answer in
    time, 502 when it answered wrongly; always with the reason and the call's outcome."""
    if isinstance(error, ServerUnavailable):
        code = status.HTTP_503_SERVICE_UNAVAILABLE
    elif isinstance(error, RequestTimedOut):
        code = status.HTTP_504_GATEWAY_TIMEOUT
    else:
        code = status.HTTP_502_BAD_GATEWAY
    body: dict[str, Any] = {"detail": str(error)}
    if error.outcome is not None:
        body["outcome"] = error.outcome.to_dict()
    return json_answer(body, code)


async def _callable(name: str, *, doing: str) -> CallableServer:
    server = await servers.get(name)
    if server is None:
        raise exceptions.NotFound("No Server matches the given query.")
    if not server.enabled:
        raise exceptions.ValidationError({"enabled": [f"The server is disabled; enable it before {doing}."]})
    if server.target is None:
        raise exceptions.ValidationError({"server": [server.target_problem]})
    return server


def _validated(serializer_class: type, body: Any) -> dict[str, Any]:
    serializer = serializer_class(data=body if body is not None else {})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _cancelled(error: CallCancelled) -> JsonResponse:
    """A call its caller (or an admin) cancelled: 409, saying who, with the recorded outcome (error_kind cancelled)."""
    body: dict[str, Any] = {"detail": f"The call was cancelled by {error.cancelled_by}."}
    if error.outcome is not None:
        body["outcome"] = error.outcome.to_dict()
    return json_answer(body, status.HTTP_409_CONFLICT)


async def _ask(
    server: CallableServer, caller: Caller, body: dict[str, Any], work: Any, *, what: tuple[str, str]
) -> JsonResponse:
    """Run `work(hub, context)` for the server on the fleet loop, opening its session if it has none.

    Every call has a correlation id (the request's, else a new one; the answer's outcome carries it): its progress
    events (`calls.progress`) are keyed by it, and `POST /api/calls/<correlation_id>/cancel/` cancels it while it
    runs. `what` is (operation, target name), for the cancellation's record."""
    timeout = body.get("timeout_seconds")
    deadline = Deadline.within(timeout if timeout is not None else server.request_timeout_seconds)
    correlation_id = body.get("correlation_id") or f"api-{uuid.uuid4().hex}"
    try:
        answer = await fleet_calls.on_server(
            server.target,  # type: ignore[arg-type]
            work,
            deadline=deadline,
            correlation_id=correlation_id,
            caller=caller.username,
            cancellable=what,
        )
    except DuplicateCall as error:
        raise exceptions.ValidationError({"correlation_id": [f"{error}; use a new one for each call."]}) from None
    except CallCancelled as error:
        return _cancelled(error)
    except ConnectionLayerError as error:
        return _fleet_error(error)
    return json_answer({"result": answer.result.to_dict(), "outcome": answer.outcome.to_dict()})


@extend_schema(tags=["servers"])
class ServerToolCallView(AsyncAPIView):
    """Call one of the server's tools. The arguments are checked against the tool's input schema first (400 naming
    each wrong field); the answer carries the result (content, structured content, is_error) and the call's outcome
    (latency, error kind and message). Every call is recorded with who made it."""

    required_role = Role.OPERATOR

    @extend_schema(
        operation_id="servers_call_create",
        request=ToolCallRequestSerializer,
        responses={200: ToolCallResponseSerializer, **FLEET_ERRORS},
    )
    async def post(self, request: HttpRequest, caller: Caller, body: Any, name: str) -> JsonResponse:
        server = await _callable(name, doing="calling its tools")
        call = _validated(ToolCallRequestSerializer, body)
        tool, arguments = call["tool"], call["arguments"]
        if server.tools is None or tool not in server.tools:
            message = await with_database(_unknown_tool_message, name, tool)
            raise exceptions.ValidationError({"tool": [message]})
        problems = argument_errors(server.tools[tool], arguments)
        if problems:
            raise exceptions.ValidationError({"arguments": problems})
        return await _ask(
            server,
            caller,
            call,
            lambda hub, context: hub.call_tool(name, tool, arguments, context=context),
            what=("tools/call", tool),
        )


@extend_schema(tags=["servers"])
class ServerResourceReadView(AsyncAPIView):
    """Read one of the server's resources by URI; recorded with who read it."""

    required_role = Role.OPERATOR

    @extend_schema(
        operation_id="servers_read_create",
        request=ResourceReadRequestSerializer,
        responses={200: ResourceReadResponseSerializer, **FLEET_ERRORS},
    )
    async def post(self, request: HttpRequest, caller: Caller, body: Any, name: str) -> JsonResponse:
        server = await _callable(name, doing="reading its resources")
        read = _validated(ResourceReadRequestSerializer, body)
        uri = read["uri"]
        return await _ask(
            server,
            caller,
            read,
            lambda hub, context: hub.read_resource(name, uri, context=context),
            what=("resources/read", uri),
        )


class PromptRequestSerializer(serializers.Serializer):
    prompt = serializers.CharField(max_length=300)
    arguments = serializers.DictField(
        required=False, default=dict, help_text="Argument name -> text, as the prompt declares them."
    )
    timeout_seconds = serializers.FloatField(
        required=False, min_value=0.1, max_value=600, help_text="Default: the server's request timeout."
    )
    correlation_id = serializers.CharField(required=False, max_length=100, allow_blank=True, default="")


class PromptMessageSerializer(serializers.Serializer):
    role = serializers.CharField(help_text="user or assistant")
    content = serializers.DictField(help_text="One content item as MCP sends it (type text, image, resource...).")


class PromptResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    messages = PromptMessageSerializer(many=True)


class PromptResponseSerializer(serializers.Serializer):
    result = PromptResultSerializer()
    outcome = CallOutcomeSerializer()


@extend_schema(tags=["servers"])
class ServerPromptView(AsyncAPIView):
    """Render one of the server's prompts (`prompts/get`) with its arguments. The arguments are checked against the
    ones the prompt declares first (400 naming each: required, unknown, not text); the answer carries the rendered
    messages and the call's outcome. Recorded with who asked."""

    required_role = Role.OPERATOR

    @extend_schema(
        operation_id="servers_prompt_create",
        request=PromptRequestSerializer,
        responses={200: PromptResponseSerializer, **FLEET_ERRORS},
    )
    async def post(self, request: HttpRequest, caller: Caller, body: Any, name: str) -> JsonResponse:
        server = await _callable(name, doing="running its prompts")
        ask = _validated(PromptRequestSerializer, body)
        prompt, arguments = ask["prompt"], ask["arguments"]
        if server.prompts is None or prompt not in server.prompts:
            message = await with_database(_unknown_prompt_message, name, prompt)
            raise exceptions.ValidationError({"prompt": [message]})
        problems = prompt_argument_errors(server.prompts[prompt], arguments)
        if problems:
            raise exceptions.ValidationError({"arguments": problems})
        return await _ask(
            server,
            caller,
            ask,
            lambda hub, context: fleet_calls.prompt_on(hub, name, prompt, arguments, context),
            what=("prompts/get", prompt),
        )


def _unknown_prompt_message(name: str, prompt: str) -> str:
    return known_prompts_message(Server.objects.get(name=name), prompt)


def _unknown_tool_message(name: str, tool: str) -> str:
    server = Server.objects.get(name=name)
    return known_tools_message(server, tool)


class CallCancelResponseSerializer(serializers.Serializer):
    cancelled = serializers.BooleanField()


@extend_schema(tags=["servers"])
class CallCancelView(AsyncAPIView):
    """Cancel a call made through this API (`/call/`, `/read/`, `/prompt/`) while it runs, by its correlation id (the
    one the call was made with, or the one its answer's outcome carries). The server is sent the protocol's
    cancellation, and the call answers 409 "The call was cancelled by <user>." with its outcome (error_kind
    `cancelled`), recorded like every call. Its caller or an admin may cancel it: someone else's call is a 403, an
    unknown or finished one a 404. Answers 202 {"cancelled": true} once the cancellation is sent on its way."""

    required_role = Role.OPERATOR

    @extend_schema(
        operation_id="calls_cancel_create",
        request=None,
        responses={202: CallCancelResponseSerializer, 403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
    )
    async def post(self, request: HttpRequest, caller: Caller, body: Any, correlation_id: str) -> JsonResponse:
        result = fleet_calls.cancel_call(
            correlation_id, by=caller.username, may_cancel_others=caller.role >= Role.ADMIN
        )
        if result is CancelResult.UNKNOWN:
            raise exceptions.NotFound("No call with this correlation id is in flight (it never ran, or it finished).")
        if result is CancelResult.FORBIDDEN:
            raise exceptions.PermissionDenied("This call is someone else's: only its caller or an admin may cancel it.")
        return json_answer({"cancelled": True}, status.HTTP_202_ACCEPTED)
