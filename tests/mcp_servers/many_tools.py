"""A server that lists far more tools than anyone should keep: 100,000 of them, page by page over real cursors.

`tools/list` is answered by a middleware from a generated catalogue (the SDK's own tool registry is not built for
100,000 entries), each page MANY_TOOLS_PAGE_SIZE long with a `nextCursor` until the end. `echo` is a real tool (listed
first), so the server declares tools and can be called.

Environment: MANY_TOOLS_TOTAL (default 100000), MANY_TOOLS_PAGE_SIZE (default 5000), MANY_TOOLS_HUGE_BYTES (when
set, tool number 1 carries a description that long: an entry over a per-entry byte cap).

Run: ``python tests/mcp_servers/many_tools.py [stdio|streamable-http|sse] [--port N] [--marker X]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parse_args, serve  # noqa: E402
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp_types import ListToolsResult, Tool  # noqa: E402

TOTAL = int(os.environ.get("MANY_TOOLS_TOTAL", "100000") or 100_000)
PAGE_SIZE = int(os.environ.get("MANY_TOOLS_PAGE_SIZE", "5000") or 5_000)
HUGE_BYTES = int(os.environ.get("MANY_TOOLS_HUGE_BYTES", "0") or 0)
SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def _tool(number: int) -> Tool:
    description = "x" * HUGE_BYTES if number == 1 and HUGE_BYTES else f"Generated tool number {number}."
    return Tool(name=f"tool_{number:06d}", description=description, input_schema=SCHEMA)


async def paged_tools(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Answer tools/list from the catalogue: the server's real tools, then generated ones up to TOTAL. The cursor
    is the index of the page's first entry."""
    if ctx.method != "tools/list":
        return await call_next(ctx)
    real = await server.list_tools()
    cursor = (ctx.params or {}).get("cursor")
    start = int(cursor) if cursor else 0
    end = min(start + PAGE_SIZE, TOTAL)
    page = [real[index] if index < len(real) else _tool(index - len(real)) for index in range(start, end)]
    return ListToolsResult(tools=page, next_cursor=str(end) if end < TOTAL else None)


server = MCPServer("many-tools", version="1.0.0", middleware=[paged_tools])


@server.tool()
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    serve(server, parse_args())
