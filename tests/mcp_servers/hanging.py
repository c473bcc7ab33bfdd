"""An MCP server whose `hang` tools never answer; `echo` keeps working alongside them.

`hang` awaits forever (a cancel notification from the client ends it); `hang_hard` blocks a worker thread
in time.sleep, which no cancellation can interrupt.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parse_args, serve  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402

server = MCPServer("hanging", version="1.0.0")


@server.tool()
async def echo(text: str) -> str:
    return text


@server.tool()
async def hang() -> str:
    """Never returns (until cancelled)."""
    await asyncio.Event().wait()
    return "unreachable"


@server.tool()
def hang_hard(seconds: float = 3600.0) -> str:
    """Blocks a worker thread; cancellation cannot interrupt it."""
    time.sleep(seconds)
    return "woke up"


if __name__ == "__main__":
    serve(server, parse_args())
