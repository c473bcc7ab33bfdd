"""One agent's request through the pass-through, as seen from the fleet loop: where the upstream's progress, log
entries and requests for input are handed over to the agent.

The upstream's session lives on the fleet loop (the mcp-fleet thread); the agent's session on the web server's loop.
An `AgentLink` is made on the web loop for each agent request and given to the fleet side:
- `progress(...)` and `tell(...)` are called on the fleet loop, from the SDK client's receive path, so they never
  wait: they queue the notification on the web loop (bounded: beyond `MAX_QUEUED` the newest are dropped and
  counted), where one pump task sends them to the agent in the order they came, on the agent request's own stream;
- `ask(request)` (an elicitation, sampling or roots request, on the fleet loop) runs the request to the agent on the
  web loop and waits for the answer; an agent's refusal or failure comes back as `ErrorData` (the upstream then
  sees a JSON-RPC error, as if it had asked the agent itself);
- `flush()` (web loop) waits until what was queued is sent, before the answer goes back: progress before the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types as types
from mcp import MCPError
from mcp.server.connection import allowed_log_levels
from mcp.server.context import ServerRequestContext
from mcp.shared.message import ServerMessageMetadata
from pydantic import ValidationError

logger = logging.getLogger(__name__)

# Notifications waiting for the agent (progress, log entries) per request; a server that floods gets the newest
# dropped, not our memory used.
MAX_QUEUED = 1_000
# How long the answer waits for the queued notifications to reach the agent before it goes anyway.
FLUSH_SECONDS = 5.0

LOG_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)

_ANSWER_TYPES: dict[str, type[Any]] = {
    "elicitation/create": types.ElicitResult,
    "sampling/createMessage": types.CreateMessageResult,
    "roots/list": types.ListRootsResult,
}


class AgentLink:
    """The agent's end of one relayed request (made on the web loop, used from the fleet loop)."""

    def __init__(
        self,
        ctx: ServerRequestContext[Any, Any],
        *,
        progress_token: str | int | None,
        log_level: types.LoggingLevel | None = None,
    ) -> None:
        self._ctx = ctx
        # The levels this request may be sent: on 2026-07-28 what its `_meta` opted in to (none without), on the
        # handshake era everything from the level the agent set with logging/setLevel.
        levels = allowed_log_levels(ctx.session.protocol_version, ctx.meta)
        if log_level is not None and log_level in LOG_LEVELS:
            levels = levels & frozenset(LOG_LEVELS[LOG_LEVELS.index(log_level) :])
        self._log_levels = levels
        self._loop = asyncio.get_running_loop()
        self.progress_token = progress_token
        self._queue: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._queued = 0
        self.dropped = 0
        self.sent = 0
        self._pump: asyncio.Task[None] | None = None

    @property
    def session_key(self) -> object:
        """What identifies the agent's session (see `agent_key`)."""
        return agent_key(self._ctx)

    @property
    def can_be_asked(self) -> bool:
        """Whether the agent can take a request during its call (a handshake-era session with a back-channel)."""
        return self._ctx.session.can_send_request

    # -- fleet loop ---------------------------------------------------------------------------------------------

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        """The SDK client's progress callback for the upstream request: hand it over, never wait."""
        token = self.progress_token
        if token is None:
            return
        ctx = self._ctx

        async def send() -> None:
            await ctx.session.send_progress_notification(
                token, progress, total, message, related_request_id=_related(ctx)
            )

        self._hand_over(send)

    def tell(self, params: types.LoggingMessageNotificationParams) -> None:
        """A log entry the upstream sent during this request: to the agent, at the levels it asked for, on its
        request's stream."""
        if params.level not in self._log_levels:
            return
        ctx = self._ctx
        entry = types.LoggingMessageNotification(
            params=types.LoggingMessageNotificationParams(level=params.level, data=params.data, logger=params.logger)
        )

        async def send() -> None:
            await ctx.session.send_notification(entry, related_request_id=_related(ctx))

        self._hand_over(send)

    async def ask(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
        """Put the upstream's request to the agent (on the web loop) and wait for its answer."""
        future = asyncio.run_coroutine_threadsafe(self.ask_here(request), self._loop)
        return await asyncio.wrap_future(future)

    # -- web loop -----------------------------------------------------------------------------------------------

    async def ask_here(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
        """The same, from the web loop (the 2026-07-28 driver of an input-required result runs here)."""
        await self.flush()
        answer_type = _ANSWER_TYPES[request.method]
        metadata = ServerMessageMetadata(related_request_id=_related(self._ctx))
        try:
            return await self._ctx.session.send_request(request, answer_type, metadata=metadata)
        except MCPError as error:
            return types.ErrorData(code=error.code, message=error.message, data=error.data)
        except ValidationError as error:
            return types.ErrorData(code=types.INVALID_PARAMS, message=f"the agent's answer is not valid: {error}")
        except Exception as error:  # noqa: BLE001 - whatever the agent's side did, the upstream gets an error
            logger.info("asking the agent (%s) failed: %s", request.method, type(error).__name__)
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"the agent could not be asked: {error}")

    def _hand_over(self, send: Callable[[], Awaitable[None]]) -> None:
        self._loop.call_soon_threadsafe(self._enqueue, send)

    def _enqueue(self, send: Callable[[], Awaitable[None]]) -> None:
        if self._queued >= MAX_QUEUED:
            self.dropped += 1
            return
        self._queued += 1
        self._queue.put_nowait(send)
        if self._pump is None:
            self._pump = self._loop.create_task(self._run_pump(), name="mcp-passthrough-relay")

    async def _run_pump(self) -> None:
        while True:
            send = await self._queue.get()
            try:
                if send is None:
                    return
                await send()
                self.sent += 1
            except Exception as error:  # noqa: BLE001 - an agent gone mid-call loses its notifications, nothing else
                self.dropped += 1
                logger.debug("a notification to the agent was not delivered: %s", type(error).__name__)
            finally:
                if send is not None:
                    self._queued -= 1
                self._queue.task_done()

    async def flush(self) -> None:
        """Wait (bounded) until everything handed over so far is with the agent."""
        # What the fleet loop handed over before now may still sit in this loop's ready queue: one turn lets it in.
        await asyncio.sleep(0)
        if self._pump is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), FLUSH_SECONDS)

    async def close(self) -> None:
        """Flush, then stop the pump."""
        await self.flush()
        if self._pump is not None and not self._pump.done():
            self._queue.put_nowait(None)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._pump, FLUSH_SECONDS)
            if not self._pump.done():
                self._pump.cancel()


def _related(ctx: ServerRequestContext[Any, Any]) -> Any:
    return ctx.request_id


def agent_key(ctx: ServerRequestContext[Any, Any]) -> object:
    """What identifies the agent a request comes from: its Streamable HTTP session (handshake era), else the request
    alone (2026-07-28 requests carry no session)."""
    headers = getattr(ctx.request, "headers", None)
    session_id = headers.get("mcp-session-id") if headers is not None else None
    return ("session", session_id) if session_id else ("request", id(ctx))
