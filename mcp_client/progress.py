"""A tool call's progress, as the server reports it, onto the session's `progress` stream.

Every `tools/call` the connection layer makes passes the SDK client a `progress_callback` (the same way the MCP
endpoint's pass-through asks for progress on an agent's behalf), so the request carries a `progressToken` and a server
that reports progress is heard. The callback is a `ProgressReporter`, one per call: it runs on the fleet loop in the
SDK's receive path, so it never waits; it bounds what the server sent (numbers must be finite, the message is cut to
`MAX_MESSAGE_CHARS`) and coalesces to at most one item per `min_interval` seconds per call, keeping the newest: a
report inside the interval waits for its end, replacing any report waiting before it, and the call's end (`finish()`)
sends the one still waiting, so the last progress always goes out, and before the call's answer.

Readers (the pipeline's `calls.progress` events) subscribe to `SessionStreams.progress` on the fleet loop.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

MAX_MESSAGE_CHARS = 500
DEFAULT_MIN_INTERVAL_SECONDS = 0.1  # at most 10 progress items a second per call


@dataclass(frozen=True)
class CallProgress:
    server: str
    tool: str
    correlation_id: str
    caller: str
    progress: float
    total: float | None
    message: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class ProgressReporter:
    """The progress callback of one call (lives on the fleet loop)."""

    def __init__(
        self,
        *,
        server: str,
        tool: str,
        correlation_id: str,
        caller: str,
        publish: Callable[[CallProgress], None],
        min_interval: float = DEFAULT_MIN_INTERVAL_SECONDS,
    ) -> None:
        self._identity = (server, tool, correlation_id, caller)
        self._publish = publish
        self._min_interval = min_interval
        self._last_sent = -math.inf
        self._waiting: CallProgress | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._finished = False
        self.received = 0
        self.sent = 0
        self.refused = 0  # reports that were not numbers we can show

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        """The SDK's `ProgressFnT`."""
        if self._finished:
            return
        self.received += 1
        if not _finite(progress) or (total is not None and not _finite(total)):
            self.refused += 1
            return
        server, tool, correlation_id, caller = self._identity
        item = CallProgress(
            server=server,
            tool=tool,
            correlation_id=correlation_id,
            caller=caller,
            progress=float(progress),
            total=float(total) if total is not None else None,
            message=(message or "")[:MAX_MESSAGE_CHARS] if isinstance(message, str) else "",
        )
        loop = asyncio.get_running_loop()
        wait = self._last_sent + self._min_interval - loop.time()
        if wait <= 0 and self._waiting is None:
            self._send(item)
            return
        self._waiting = item  # newer replaces older: the interval ends with the latest
        if self._timer is None:
            self._timer = loop.call_later(max(0.0, wait), self._send_waiting)

    def _send_waiting(self) -> None:
        self._timer = None
        item, self._waiting = self._waiting, None
        if item is not None:
            self._send(item)

    def _send(self, item: CallProgress) -> None:
        self._last_sent = asyncio.get_running_loop().time()
        self.sent += 1
        self._publish(item)

    def finish(self) -> None:
        """The call ended: send what is still waiting now, and take nothing more (late reports are dropped)."""
        if self._finished:
            return
        self._finished = True
        if self._timer is not None:
            self._timer.cancel()
        self._send_waiting()


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
