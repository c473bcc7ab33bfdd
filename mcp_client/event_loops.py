"""The event loop the fleet runs on: uvloop where it is installed, else asyncio's own.

Every MCP call crosses the loop several times (the SDK's task groups, memory streams, httpx's socket writes); on
uvloop the loop's own share of that work is a fraction of the pure-Python selector loop's, which measured as a
third more calls per second through the REST API at 20 callers (bench/serving_path.py). `MCP_EVENT_LOOP=asyncio`
forces the standard loop (to compare, or where uvloop misbehaves).
"""

from __future__ import annotations

import asyncio
import os


def loop_kind() -> str:
    """ "uvloop" or "asyncio": what `new_event_loop` builds in this process."""
    if os.environ.get("MCP_EVENT_LOOP", "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def new_event_loop() -> asyncio.AbstractEventLoop:
    if loop_kind() == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
