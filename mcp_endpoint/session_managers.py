"""The SDK's StreamableHTTPSessionManager of one MCP server of ours (the `/mcp/` aggregate, one server's
pass-through), running on one event loop: its `run()` context held open by a task of its own until `stop()`.

uvicorn runs with `lifespan="off"` (orchestrator_site/web_server.py), so a manager starts on its first request and
stops when `serve` stops the endpoint (the router's `stop()`). Sessions are stateful (list_changed on the GET stream
and per-session state need them, 2025 era), bounded by MCP_ENDPOINT_MAX_SESSIONS and closed after
MCP_ENDPOINT_SESSION_IDLE_SECONDS idle; request bodies by MCP_ENDPOINT_MAX_BODY_BYTES.

Also the plain-text answers the endpoint gives before any session (404, 503).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]

# How long stop() waits for a session manager to wind down its sessions before it gives up on it.
STOP_SECONDS = 10.0


class RunningSessionManager:
    """`manager` serves `app`'s sessions on `loop` once `ready()` returns; `what` names it in log lines."""

    def __init__(self, app: Server[Any], loop: asyncio.AbstractEventLoop, *, what: str) -> None:
        self.what = what
        self.manager = StreamableHTTPSessionManager(
            app=app,
            stateless=False,
            json_response=False,
            session_idle_timeout=settings.MCP_ENDPOINT_SESSION_IDLE_SECONDS,
            max_sessions=settings.MCP_ENDPOINT_MAX_SESSIONS,
            max_request_body_size=settings.MCP_ENDPOINT_MAX_BODY_BYTES,
        )
        self._stop_requested = asyncio.Event()
        self._ready: asyncio.Future[None] = loop.create_future()
        # A fresh context: the task outlives the request that happened to start it and must not carry its context
        # variables (the SDK's request clock, the caller).
        self._task = loop.create_task(
            self._hold_open(), name=f"mcp-session-manager:{what}", context=contextvars.Context()
        )

    async def _hold_open(self) -> None:
        try:
            async with self.manager.run():
                self._ready.set_result(None)
                await self._stop_requested.wait()
        except asyncio.CancelledError:
            if not self._ready.done():
                self._ready.cancel()
            raise
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(error)
            raise

    async def ready(self) -> None:
        await asyncio.shield(self._ready)

    async def stop(self) -> None:
        self._stop_requested.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=STOP_SECONDS)
        except TimeoutError:
            logger.warning(
                "the session manager of %s did not stop within %.0f s; cancelling it", self.what, STOP_SECONDS
            )
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        except Exception:
            logger.exception("the session manager of %s failed while stopping", self.what)


async def plain_answer(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
