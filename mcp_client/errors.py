"""Errors raised by the connection layer.

Callers see exactly these types, never the SDK's mix of MCPError codes, ExceptionGroups, CancelledError and
pydantic errors. Each names the server key so a message in a log or a UI is actionable on its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .outcomes import CallOutcome


class ConnectionLayerError(Exception):
    """Base class: something went wrong talking to the MCP server `key` (the server's name in the registry).

    `outcome` is the request's record (latency, error kind, who asked) once the layer has made it.
    """

    outcome: CallOutcome | None = None

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class ServerUnavailable(ConnectionLayerError):
    """No usable session: the server is not registered, still connecting, in backoff, or removed.

    Raised fast (no network I/O). `retry_at` is when the next reconnect attempt is due, if one is scheduled.
    """

    def __init__(self, key: str, reason: str, retry_at: datetime | None = None) -> None:
        message = f"MCP server {key!r} is unavailable: {reason}"
        if retry_at is not None:
            message += f" (next reconnect attempt at {retry_at.isoformat(timespec='seconds')})"
        super().__init__(key, message)
        self.reason = reason
        self.retry_at = retry_at


class RequestTimedOut(ConnectionLayerError):
    """The request got no answer within `timeout` seconds. The session itself stays up."""

    def __init__(self, key: str, operation: str, timeout: float, target_name: str = "") -> None:
        what = f"{operation} {target_name}".strip()
        super().__init__(key, f"MCP server {key!r}: {what} timed out after {timeout:g}s")
        self.operation = operation
        self.timeout = timeout
        self.target_name = target_name


class ServerError(ConnectionLayerError):
    """The server answered with a JSON-RPC error (e.g. -32602 unknown tool). The session is fine."""

    def __init__(self, key: str, code: int, message: str, data: Any = None, operation: str = "") -> None:
        prefix = f"{operation} " if operation else ""
        super().__init__(key, f"MCP server {key!r}: {prefix}failed with error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data
        self.operation = operation


class ConnectionLost(ConnectionLayerError):
    """The session died while the request was in flight; the layer reconnects on its own."""

    def __init__(self, key: str, operation: str, reason: str) -> None:
        super().__init__(key, f"MCP server {key!r}: connection lost during {operation}: {reason}")
        self.operation = operation
        self.reason = reason


class InvalidResponse(ConnectionLayerError):
    """The server answered something that does not conform to the protocol (a malformed result)."""

    def __init__(self, key: str, operation: str, reason: str) -> None:
        super().__init__(key, f"MCP server {key!r}: invalid response to {operation}: {reason}")
        self.operation = operation
        self.reason = reason
