"""Calls in flight that a person may cancel, by the correlation id they were made with.

A call made through the REST API (the server page's call form posts there) runs as a task on the fleet loop. While it
runs, its `InFlightCall` is kept here under its correlation id, with who made it, so that
`POST /api/calls/<correlation_id>/cancel/` can find it from the web server's thread, check who asks, and cancel that
task. Cancelling the task is the protocol's cancellation: the SDK abandons the request and sends the server
`notifications/cancelled` (handshake era, every transport; on the 2026-07-28 era over Streamable HTTP it aborts the
request's own POST, which is that wire's cancellation), and the connection layer records the outcome as `cancelled`,
naming who cancelled (the tracked call is in the task's context, `current_call()`).

The task then ends with `CallCancelled` (a ConnectionLayerError carrying that outcome), not a bare CancelledError, so
the caller answers "cancelled by <user>" rather than mistaking it for its own cancellation.

Bounded (`max_calls`; a call beyond it is not tracked and cannot be cancelled, it still runs) and cleaned when each
call ends. Thread-safe: tracked on the fleet loop, looked up and cancelled from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import ConnectionLayerError
from .outcomes import CallOutcome

DEFAULT_MAX_CALLS = 10_000

_current: contextvars.ContextVar[InFlightCall | None] = contextvars.ContextVar("mcp_in_flight_call", default=None)


class CallCancelled(ConnectionLayerError):
    """The call was cancelled by `cancelled_by` (a person, through the cancel API) before it answered."""

    def __init__(self, key: str, operation: str, target_name: str, cancelled_by: str) -> None:
        what = f"{operation} {target_name}".strip()
        super().__init__(key, f"MCP server {key!r}: {what} was cancelled by {cancelled_by}")
        self.operation = operation
        self.target_name = target_name
        self.cancelled_by = cancelled_by


class DuplicateCall(ValueError):
    """A call with this correlation id is already in flight (ids name one call, so that it can be cancelled)."""


@dataclass(eq=False)
class InFlightCall:
    correlation_id: str
    server: str
    operation: str  # "tools/call", "resources/read", "prompts/get"
    target_name: str
    caller: str
    task: asyncio.Task[object]
    loop: asyncio.AbstractEventLoop
    cancelled_by: str | None = None
    outcome: CallOutcome | None = None  # the cancelled request's record, once the connection layer made it


class CancelResult(enum.Enum):
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # no call in flight under that id (never made, or already finished)
    FORBIDDEN = "forbidden"  # someone else's call, and the one asking is not allowed to cancel it


class InFlightCalls:
    def __init__(self, max_calls: int = DEFAULT_MAX_CALLS) -> None:
        self.max_calls = max_calls
        self._calls: dict[str, InFlightCall] = {}
        self._lock = threading.Lock()
        self.untracked = 0  # calls that found the registry full

    def __len__(self) -> int:
        return len(self._calls)

    @contextlib.contextmanager
    def track(
        self, *, correlation_id: str, server: str, operation: str, target_name: str, caller: str
    ) -> Iterator[InFlightCall | None]:
        """Around a call on the fleet loop (in its own task). Raises DuplicateCall when the id is already in flight;
        a cancel of this call turns its CancelledError into CallCancelled on the way out."""
        task = asyncio.current_task()
        if task is None or not correlation_id:
            yield None
            return
        call = InFlightCall(
            correlation_id=correlation_id,
            server=server,
            operation=operation,
            target_name=target_name,
            caller=caller,
            task=task,
            loop=asyncio.get_running_loop(),
        )
        with self._lock:
            if correlation_id in self._calls:
                raise DuplicateCall(f"a call with correlation id {correlation_id!r} is already in flight")
            tracked = len(self._calls) < self.max_calls
            if tracked:
                self._calls[correlation_id] = call
            else:
                self.untracked += 1
        token = _current.set(call)
        try:
            yield call if tracked else None
        except asyncio.CancelledError:
            # Only when the cancel API's cancellation is the one in progress (not a shutdown on top of it).
            if call.cancelled_by is not None and task.cancelling() == 1:
                task.uncancel()
                cancelled = CallCancelled(server, operation, target_name, call.cancelled_by)
                cancelled.outcome = call.outcome
                raise cancelled from None
            raise
        finally:
            _current.reset(token)
            if tracked:
                with self._lock:
                    if self._calls.get(correlation_id) is call:
                        del self._calls[correlation_id]

    def get(self, correlation_id: str) -> InFlightCall | None:
        with self._lock:
            return self._calls.get(correlation_id)

    def cancel(self, correlation_id: str, *, by: str, may_cancel_others: bool) -> CancelResult:
        """Cancel the call (from any thread): its task is cancelled on its loop. Only its caller, or someone who
        `may_cancel_others` (an admin), may; a call already being cancelled is reported cancelled again."""
        with self._lock:
            call = self._calls.get(correlation_id)
            if call is None or call.task.done():
                return CancelResult.UNKNOWN
            if call.caller != by and not may_cancel_others:
                return CancelResult.FORBIDDEN
            first = call.cancelled_by is None
            if first:
                call.cancelled_by = by
        if first:
            call.loop.call_soon_threadsafe(call.task.cancel)
        return CancelResult.CANCELLED


def current_call() -> InFlightCall | None:
    """The tracked call this task runs, if any: the connection layer names who cancelled it in the outcome it
    records, and hands that outcome back here for `CallCancelled`."""
    return _current.get()
