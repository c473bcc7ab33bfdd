"""A call to a transaction's participant and what came of it, shared by both protocols (two-phase and saga).

A call never raises: its `CallResult` says whether it acted (`ok`), what it answered, and whether a failure may
still have acted on the participant (`unsure`: a timeout, a lost connection, a garbled answer), which is what decides
between "refused" (nothing to undo) and "unknown" (look it up, or compensate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleet import calls as fleet_calls
from mcp_client import (
    ConnectionLayerError,
    ConnectionLost,
    Deadline,
    InvalidResponse,
    RequestTimedOut,
    ServerUnavailable,
)
from mcp_client.results import NoResultValue, ToolAnsweredError, ToolCallResult, result_value

CALLER = "coordinator"


@dataclass(frozen=True)
class CallResult:
    ok: bool
    result: dict[str, Any] | None = None
    error: str = ""
    unsure: bool = False  # the request may have acted: a timeout, a lost connection, a garbled answer


async def call_participant(server: str, tool: str, arguments: dict[str, Any], seconds: float, key: str) -> CallResult:
    try:
        answer = await fleet_calls.call_tool(
            server, tool, arguments, deadline=Deadline.within(seconds), caller=CALLER, correlation_id=key
        )
    except (RequestTimedOut, ConnectionLost, InvalidResponse) as exc:
        return CallResult(False, error=str(exc), unsure=True)
    except (ServerUnavailable, ConnectionLayerError) as exc:
        return CallResult(False, error=str(exc))
    return call_result_of(answer.result)


def call_result_of(result: ToolCallResult) -> CallResult:
    """A participant's answer: an error answer refused the request; any other acted, and its value (an object:
    structured content, else JSON text) is what `$result.<field>` and the reservation id are read from."""
    try:
        value = result_value(result)
    except ToolAnsweredError as exc:
        return CallResult(False, error=exc.text[:500] or "the tool answered an error")
    except NoResultValue:
        value = None  # it acted, but its answer has no fields to read
    return CallResult(True, result=value if isinstance(value, dict) else {})
