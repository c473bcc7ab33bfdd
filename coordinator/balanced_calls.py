"""Balanced calls: one tool, several servers that offer it, the balancer's choice and failover within one deadline.

The balancer lives on the fleet loop (it is not thread-safe: every choice and every outcome happens there); the
whole call, choice and failovers included, is awaited on that loop. Every balanced call is stored
as an operation (kind `call`) with its attempts as steps.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from rest_framework import serializers

from coordinator.balancer import Balancer, Candidate, call_with_failover
from coordinator.errors import RequestError
from coordinator.models import Operation, OperationKind
from coordinator.services import operation_finish, operation_start
from fleet import application
from fleet.calls import await_on_fleet, run_on_fleet
from mcp_client import Deadline
from orchestrator_site.database_access import with_database
from registry.models import CapabilityKind, Server
from registry.request_bodies import JsonBody, JsonNumberField, JsonObjectField, JsonTextField, one_message, plain_errors
from registry.selectors import tool_schemas_for
from registry.tool_arguments import argument_errors

_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
CALLER = "coordinator"


def balancer() -> Balancer:
    """The fleet application's balancer (used on the fleet loop only)."""
    return application.current().balancer


def routing_stats() -> dict[str, Any]:
    """The balancer's figures, read on the fleet loop (where they change)."""

    async def read() -> dict[str, Any]:
        return balancer().stats()

    # Instant work: it only waits for its turn on the fleet loop.
    return run_on_fleet(read(), deadline=Deadline.within(0.0), what="reading the balancer's figures")


SLUG = "A slug (letters, digits, - and _)."
SERVER_NAMES = "A list of server names."


class BalancedCallSerializer(JsonBody):
    """A tool to call on the best of the servers offering it (narrowed by servers, tag or server_type), failing over
    to the next within timeout_seconds. 200 with the answer and every attempt; 502 when every candidate failed."""

    tool = JsonTextField(allow_blank=False, max_length=300, message="A tool name.")
    arguments = JsonObjectField(
        required=False, default=dict, message="Must be a JSON object of argument names to values."
    )
    servers = serializers.ListField(
        child=JsonTextField(pattern=_NAME, message=SERVER_NAMES),
        required=False,
        default=list,
        error_messages=one_message(SERVER_NAMES, ("not_a_list",)),
    )
    tag = JsonTextField(required=False, default="", pattern=_NAME, message=SLUG)
    server_type = JsonTextField(required=False, default="", pattern=_NAME, message=SLUG)
    idempotency_key = JsonTextField(
        required=False, default=None, min_length=1, max_length=200, message="Text of 1 to 200 characters."
    )
    timeout_seconds = JsonNumberField(required=False, default=10.0, min_value=0.01, max_value=300)


def parse_call(data: Any) -> dict[str, Any]:
    """The call a request asks for (every field, defaults filled in), or RequestError naming each bad field."""
    body = BalancedCallSerializer(data=data)
    if not body.is_valid():
        raise RequestError(plain_errors(body.errors))
    return dict(body.validated_data)


def candidates_for(call: dict[str, Any]) -> list[Candidate]:
    rows = Server.objects.filter(enabled=True, capabilities__kind=CapabilityKind.TOOL, capabilities__name=call["tool"])
    if call["servers"]:
        rows = rows.filter(name__in=call["servers"])
    if call["tag"]:
        rows = rows.filter(tags__name=call["tag"])
    if call["server_type"]:
        rows = rows.filter(server_type=call["server_type"])
    servers = list(rows.distinct().order_by("name"))
    if not servers:
        raise RequestError(
            {"tool": [f"No candidate server: no enabled server (of those named) offers {call['tool']!r}."]}
        )
    schemas = tool_schemas_for(servers, call["tool"])
    for server in servers:
        offers, input_schema, _ = schemas[server.pk]
        errors = argument_errors(input_schema, call["arguments"]) if offers else {}
        if errors:
            raise RequestError({name if name == "arguments" else f"arguments.{name}": m for name, m in errors.items()})
    return [Candidate(server.name, server.status, server.priority) for server in servers]


def _start(call: dict[str, Any], created_by: str) -> tuple[list[Candidate], Operation]:
    candidates = candidates_for(call)
    operation = operation_start(
        kind=OperationKind.CALL,
        parameters={**call, "candidates": [c.server for c in candidates]},
        created_by=created_by,
    )
    return candidates, operation


async def balanced_call_async(call: dict[str, Any], *, created_by: str) -> dict[str, Any]:
    """Route one call; the answer with the attempts. RequestError for a call that cannot be routed at all.

    The candidates and the operation's record are short database steps (a thread); the call, choice and failovers
    included, is awaited on the fleet loop, holding no thread."""
    candidates, operation = await with_database(_start, call, created_by)
    correlation_id = f"coordinator-{uuid.uuid4().hex[:12]}"

    deadline = Deadline.within(call["timeout_seconds"])  # shared by the choice and every failover

    async def route() -> Any:
        return await call_with_failover(
            balancer(),
            candidates,
            call["tool"],
            call["arguments"],
            deadline=deadline,
            idempotency_key=call["idempotency_key"],
            caller=CALLER,
            correlation_id=correlation_id,
        )

    try:
        result = await await_on_fleet(route(), deadline=deadline, what=f"the balanced call {correlation_id}")
    except Exception as exc:
        await with_database(
            operation_finish, operation, steps=[], result=None, error=f"the call could not be routed: {exc}"
        )
        raise
    steps = [
        {
            "name": f"attempt {index}: {attempt.server}",
            "state": "succeeded" if attempt.ok else "failed",
            "duration_ms": attempt.latency_ms,
            "error": attempt.error or None,
        }
        for index, attempt in enumerate(result.attempts, start=1)
    ]
    steps += [
        {"name": f"excluded: {e.server}", "state": "skipped", "duration_ms": None, "error": e.reason}
        for e in result.excluded
    ]
    answer = {
        "server": result.server,
        "result": result.answer.result.to_dict() if result.answer is not None else None,
        "latency_ms": result.answer.outcome.latency_ms if result.answer is not None else None,
        "attempts": [
            {"server": a.server, "ok": a.ok, "latency_ms": a.latency_ms, "error": a.error or None}
            for a in result.attempts
        ],
        # Left out before the choice (in maintenance): the caller sees why a replica got no call.
        "excluded": [e.to_json() for e in result.excluded],
        "correlation_id": correlation_id,
    }
    operation = await with_database(operation_finish, operation, steps=steps, result=answer, error=result.error)
    return {"operation_id": operation.pk, "state": operation.state, "error": result.error or None, **answer}


def balanced_call(call: dict[str, Any], *, created_by: str) -> dict[str, Any]:
    """`balanced_call_async` for sync code (the demo, commands)."""
    return async_to_sync(balanced_call_async)(call, created_by=created_by)
