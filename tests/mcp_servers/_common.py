"""Shared command line for the test servers in this directory.

Every server accepts ``[stdio|streamable-http|sse] [--port N] [--marker TEXT]``. The marker is not used by
the server: it only sits on the command line so tests can find (and count) their own child processes
in /proc and prove that none survive a shutdown.
"""

from __future__ import annotations

import argparse
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", nargs="?", default="stdio", choices=["stdio", "streamable-http", "sse"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--marker", default="")
    return parser.parse_args(argv)


def serve(server: Any, args: argparse.Namespace) -> None:
    """Run an MCPServer over the transport chosen on the command line."""
    if args.transport == "stdio":
        server.run("stdio")
    elif args.transport == "sse":
        server.run("sse", host=args.host, port=args.port)
    else:
        server.run("streamable-http", host=args.host, port=args.port)
