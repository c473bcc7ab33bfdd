"""One record per request made through the layer, for health tracking and load balancing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

ErrorKind = Literal[
    "timeout",  # no answer within the request timeout
    "unavailable",  # no session (connecting / backoff / removed): nothing was sent
    "connection_lost",  # the session died during the request
    "server_error",  # the server answered a JSON-RPC error
    "tool_error",  # tools/call answered with isError=True (the result is still returned)
    "invalid_response",  # the answer did not conform to the protocol
    "cancelled",  # the caller cancelled the request
    "client_error",  # the request could not be built (bad arguments on our side)
]

# Requests a server sent us (elicitation...): recorded as outcomes too, so they show beside the calls.
SERVER_REQUEST_OPERATIONS = ("elicitation/create", "sampling/createMessage", "roots/list")


@dataclass(frozen=True)
class CallOutcome:
    server_key: str
    operation: str  # "tools/call", "discover", "probe", "resources/read", ...
    target_name: str  # tool name, resource uri, or ""
    started_at: datetime  # aware UTC
    latency_ms: float
    ok: bool
    error_kind: ErrorKind | None = None
    error_message: str = ""
    correlation_id: str = ""  # given by the caller to trace one request across servers and retries
    caller: str = ""  # who asked: a user name, or a component ("supervisor", "fusion")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data
