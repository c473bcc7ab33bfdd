"""A hostile MCP server: answers as large as asked, and floods of notifications.

Tools: ``huge(size_mb)`` answers a text of that many MiB; ``huge_structured(size_mb)`` the same as structured content;
``small()`` answers "small"; ``flood(count)`` sends that many log notifications as fast as it can, then answers how
many it sent. Resource ``big://{size_kb}`` reads as a text of that many KiB.

Run: ``python tests/mcp_servers/oversized.py [stdio|streamable-http|sse] [--port N] [--marker X]``. With
``JSON_RESPONSE=1`` in its environment, Streamable HTTP answers with JSON bodies instead of event streams.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parse_args, serve  # noqa: E402
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402

MIB = 1024 * 1024

server = MCPServer("oversized", version="1.0.0")


# structured_output=False: the text once, as content (with an output schema MCPServer would send it twice).
@server.tool(structured_output=False)
async def huge(size_mb: float) -> str:
    """A text of `size_mb` MiB."""
    return "x" * int(size_mb * MIB)


@server.tool()
async def huge_structured(size_mb: float) -> dict[str, Any]:
    """Structured content of about `size_mb` MiB (many small strings: the walk over it is what is measured)."""
    count = int(size_mb * MIB) // 16
    return {"rows": ["0123456789abcdef"] * count}


@server.tool(structured_output=False)
async def small() -> str:
    """A small answer."""
    return "small"


@server.tool()
async def flood(count: int, ctx: Context) -> int:
    """Send `count` log notifications as fast as the transport takes them."""
    for index in range(count):
        await ctx.log("info", f"flood {index}")
    return count


@server.resource("big://{size_kb}", name="big", mime_type="text/plain")
async def big(size_kb: str) -> str:
    return "y" * (int(size_kb) * 1024)


if __name__ == "__main__":
    args = parse_args()
    if args.transport == "streamable-http" and os.environ.get("JSON_RESPONSE") == "1":
        server.run("streamable-http", host=args.host, port=args.port, json_response=True)
    else:
        serve(server, args)
