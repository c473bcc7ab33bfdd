"""A server that reports progress and says when a call of it was cancelled (the SDK's MCPServer).

- `steps(count, seconds)`: `count` steps of `seconds` each, a progress report after each (with a message), then
  "done"; when the client cancels it (`notifications/cancelled`, which the SDK turns into a cancellation of the
  handler), it writes "cancelled steps after <n> step(s)" to stderr and, with `--record PATH`, appends it to that file.
- `token()`: the `_meta.progressToken` the request carried (or "none"), so a test can see that a caller asked for
  progress.

Run: ``python tests/mcp_servers/progressing.py [stdio|streamable-http|sse] [--port N] [--marker X]``; the record file
is taken from the environment (PROGRESSING_RECORD) so that the common command line stays the same.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parse_args, serve  # noqa: E402
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402

RECORD = os.environ.get("PROGRESSING_RECORD", "")

server = MCPServer("progressing", version="1.0.0")


def _record(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
    if RECORD:
        with open(RECORD, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


@server.tool()
async def steps(count: int, seconds: float, ctx: Context) -> str:
    """Work for `count` steps of `seconds`, reporting progress after each."""
    done = 0
    try:
        for step in range(1, count + 1):
            await asyncio.sleep(seconds)
            done = step
            await ctx.report_progress(step, count, f"step {step} of {count}")
    except asyncio.CancelledError:
        _record(f"cancelled steps after {done} step(s)")
        raise
    return "done"


class Token(TypedDict):
    progress_token: str


@server.tool()
async def token(ctx: Context) -> Token:
    """The progress token this request carried ("none" without one), as structured content."""
    meta: Any = ctx.request_context.meta or {}
    value = meta.get("progress_token", meta.get("progressToken")) if isinstance(meta, dict) else None
    return {"progress_token": "none" if value is None else str(value)}


if __name__ == "__main__":
    serve(server, parse_args())
