"""MCP connection layer: one live, self-healing SDK session per registered server.

Pure asyncio + the official `mcp` SDK (no Django). The registry app builds `ServerTarget`s from its models
and drives a `ConnectionHub`, usually the one owned by the process-wide `FleetRuntime` (`get_runtime()`).
"""

from .capabilities import DiscoveredCapabilities, Era, era_of, fetch_capabilities
from .errors import (
    ConnectionLayerError,
    ConnectionLost,
    InvalidResponse,
    RequestTimedOut,
    ServerError,
    ServerUnavailable,
)
from .hub import ConnectionHub, discover_once, open_client
from .outcomes import CallOutcome, ErrorKind
from .runtime import FleetRuntime, get_runtime, shutdown_runtime
from .session import (
    BackoffPolicy,
    ConnectionState,
    ConnectionStatus,
    ResourceReadResult,
    ServerConnection,
    ToolCallResult,
)
from .targets import ServerTarget, TransportKind
from .transports import build_client

__all__ = [
    "BackoffPolicy",
    "CallOutcome",
    "ConnectionHub",
    "ConnectionLayerError",
    "ConnectionLost",
    "ConnectionState",
    "ConnectionStatus",
    "DiscoveredCapabilities",
    "Era",
    "ErrorKind",
    "FleetRuntime",
    "InvalidResponse",
    "RequestTimedOut",
    "ResourceReadResult",
    "ServerConnection",
    "ServerError",
    "ServerTarget",
    "ServerUnavailable",
    "ToolCallResult",
    "TransportKind",
    "build_client",
    "discover_once",
    "era_of",
    "fetch_capabilities",
    "get_runtime",
    "open_client",
    "shutdown_runtime",
]
