"""ASGI: requests to `/mcp/` and `/mcp/servers/<name>/` go to the MCP endpoint, everything else to the inner
application (Django and Channels)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MCP_PREFIX = "/mcp"


def is_mcp_path(path: str) -> bool:
    return path == MCP_PREFIX or path.startswith(MCP_PREFIX + "/")


class McpEndpointRouter:
    """Wraps the site's ASGI application: HTTP requests under /mcp go to the MCP endpoint."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_mcp_path(scope["path"]):
            await _not_built_yet(scope, receive, send)
            return
        await self.inner(scope, receive, send)


async def _not_built_yet(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Not found."})
