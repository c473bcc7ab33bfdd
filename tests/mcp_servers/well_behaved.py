"""A well-behaved MCP server: echo/add tools, a slow tool that records concurrency, a resource, a prompt.

Run: ``python tests/mcp_servers/well_behaved.py [stdio|streamable-http|sse] [--port N] [--marker X]``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parse_args, serve  # noqa: E402
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext  # noqa: E402
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402

# LIST_DELAY_SECONDS makes every tools/list slow: a discovery that is still running when a test acts.
_LIST_DELAY = float(os.environ.get("LIST_DELAY_SECONDS", "0") or 0)
# RAMP_MS_PER_SECOND makes every request after the handshake slower and slower: a latency ramp for health trends.
_RAMP = float(os.environ.get("RAMP_MS_PER_SECOND", "0") or 0)
_STARTED = time.monotonic()
_HANDSHAKE = {"initialize", "server/discover", "subscriptions/listen"}


async def slow_listing(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    if ctx.method == "tools/list" and _LIST_DELAY:
        await asyncio.sleep(_LIST_DELAY)
    if _RAMP and ctx.method not in _HANDSHAKE:
        await asyncio.sleep(_RAMP * (time.monotonic() - _STARTED) / 1000.0)
    return await call_next(ctx)


server = MCPServer("well-behaved", version="1.0.0", instructions="A friendly test server.", middleware=[slow_listing])

# Server-side view of concurrency, so tests can check the client's semaphore from the other end.
_in_flight = 0
_max_in_flight = 0


class Sum(TypedDict):
    total: int


class Concurrency(TypedDict):
    in_flight: int
    max_in_flight: int


@server.tool()
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
async def add(a: int, b: int) -> Sum:
    """Add two integers (structured result)."""
    return {"total": a + b}


@server.tool()
async def fail(message: str) -> str:
    """Always raises: the server answers with an isError tool result."""
    # ToolError is the documented way to report a tool failure: isError result, no traceback on stderr.
    raise ToolError(message)


@server.tool()
async def slow(seconds: float) -> Concurrency:
    """Sleep, tracking how many calls are in flight at once on this server."""
    global _in_flight, _max_in_flight
    _in_flight += 1
    _max_in_flight = max(_max_in_flight, _in_flight)
    try:
        await asyncio.sleep(seconds)
    finally:
        _in_flight -= 1
    return {"in_flight": _in_flight, "max_in_flight": _max_in_flight}


@server.tool()
async def concurrency() -> Concurrency:
    """Report the highest number of concurrent `slow` calls seen so far."""
    return {"in_flight": _in_flight, "max_in_flight": _max_in_flight}


@server.tool()
async def touch(uri: str, ctx: Context) -> str:
    """Announce that a resource changed (reaches subscriptions/listen streams, 2026-07-28 era)."""
    await ctx.notify_resource_updated(uri)
    return uri


@server.tool()
async def change_tools(ctx: Context) -> str:
    """Announce a tools list change."""
    await ctx.notify_tools_changed()
    return "changed"


@server.tool()
async def grow_tools(ctx: Context) -> str:
    """Add a tool named `grown` (a real change of the tool list), then announce it."""

    def grown() -> str:
        return "grown"

    server.add_tool(grown, name="grown", description="Appeared at run time.")
    await ctx.notify_tools_changed()
    return "grown"


@server.resource("test://greeting", name="greeting", mime_type="text/plain")
async def greeting() -> str:
    return "hello from well-behaved"


@server.prompt()
async def greet(name: str) -> str:
    """Greet someone."""
    return f"Please greet {name} warmly."


if __name__ == "__main__":
    serve(server, parse_args())
