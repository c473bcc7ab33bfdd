"""MCP connection layer: one live, self-healing SDK session per registered server.

Pure asyncio + the official `mcp` SDK (no Django). The registry app builds `ServerTarget`s from its models
and drives a `ConnectionHub`, usually one owned by a `FleetRuntime` (in the project: the fleet application's).
Everything above the registry goes through the registry's fleet API, not through this package.
"""

from .backoff import BackoffPolicy
from .capabilities import DiscoveredCapabilities, Era, era_of, fetch_capabilities
from .deadlines import NO_CONTEXT, Deadline, RequestContext
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
from .results import Answer, ResourceReadResult, ToolCallResult
from .runtime import FleetRuntime
from .session import ServerConnection
from .state import ConnectionState, ConnectionStatus
from .streams import ServerNotification, SessionStreams, Stream, Subscription
from .targets import ServerTarget, TransportKind
from .transports import build_client

__all__ = [
    "NO_CONTEXT",
    "Answer",
    "BackoffPolicy",
    "CallOutcome",
    "ConnectionHub",
    "ConnectionLayerError",
    "ConnectionLost",
    "ConnectionState",
    "ConnectionStatus",
    "Deadline",
    "DiscoveredCapabilities",
    "Era",
    "ErrorKind",
    "FleetRuntime",
    "InvalidResponse",
    "RequestContext",
    "RequestTimedOut",
    "ResourceReadResult",
    "ServerConnection",
    "ServerError",
    "ServerNotification",
    "ServerTarget",
    "ServerUnavailable",
    "SessionStreams",
    "Stream",
    "Subscription",
    "ToolCallResult",
    "TransportKind",
    "build_client",
    "discover_once",
    "era_of",
    "fetch_capabilities",
    "open_client",
]
