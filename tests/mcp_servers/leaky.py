"""A careless server that prints the secret it was given (env `LEAKY_SECRET`) wherever it can.

Before it serves, it writes the secret to stdout (a line that is not JSON, one that is JSON but no JSON-RPC message,
and a notification whose params do not validate: the SDK's client logs each with the line or the params in the
error) and to stderr. Its `whisper` tool prints the secret
to stderr again while serving and answers a harmless text. A client must never write the secret to a log.
With `LEAKY_LONG_LINE=N` it first writes one stderr line of N characters ("start-of-long-line xxx...xxx
end-of-long-line"), then the line "after the long line".

Run: ``LEAKY_SECRET=... python tests/mcp_servers/leaky.py [stdio|streamable-http|sse] [--port N] [--marker X]``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parse_args, serve  # noqa: E402
from mcp.server.mcpserver import MCPServer  # noqa: E402

SECRET = os.environ.get("LEAKY_SECRET", "")
LONG_LINE = int(os.environ.get("LEAKY_LONG_LINE", "0") or 0)

server = MCPServer("leaky", version="1.0.0")


@server.tool()
async def whisper() -> str:
    """Print the secret to stderr, answer something harmless."""
    print(f"whispering {SECRET}", file=sys.stderr, flush=True)
    return "nothing to see"


if __name__ == "__main__":
    args = parse_args()
    if args.transport == "stdio":
        # The SDK takes over stdout once it serves; before that, stdout is the wire the client reads.
        print(f"starting with token={SECRET}", flush=True)
        print('{"debug": {"token": "' + SECRET + '"}}', flush=True)
        # A notification whose params do not validate (the secret is no log level): the SDK logs why, with the value.
        notice = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": SECRET, "data": "hi"}}
        print(json.dumps(notice), flush=True)
    if LONG_LINE:
        head, tail = "start-of-long-line ", " end-of-long-line"
        print(head + "x" * max(0, LONG_LINE - len(head) - len(tail)) + tail, file=sys.stderr, flush=True)
        print("after the long line", file=sys.stderr, flush=True)
    print(f"my secret is {SECRET}", file=sys.stderr, flush=True)
    serve(server, args)
