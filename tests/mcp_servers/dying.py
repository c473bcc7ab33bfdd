"""An MCP server that dies on demand: the `crash` tool calls os._exit mid-request (no response, no cleanup)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parse_args, serve  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402

server = MCPServer("dying", version="1.0.0")


@server.tool()
async def echo(text: str) -> str:
    return text


@server.tool()
async def pid() -> int:
    return os.getpid()


@server.tool()
async def crash(code: int = 3) -> str:
    """Exit the whole process immediately, leaving the request unanswered."""
    os._exit(code)


if __name__ == "__main__":
    serve(server, parse_args())
