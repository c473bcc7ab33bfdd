"""Asking every source at once, on the fleet loop, through the fleet API.

The answer is ready when every source is in or the overall deadline passes, whichever comes first; a source still
out then is cancelled and reported as timed out, so a late source never delays the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fleet import calls as fleet_calls
from fusion.query import FusionQuery
from fusion.sources import SourcePlan
from mcp_client import (
    ConnectionLayerError,
    Deadline,
    InvalidResponse,
    RequestTimedOut,
    ResourceReadResult,
    ToolCallResult,
)

logger = logging.getLogger(__name__)

FUSION_CALLER = "fusion"
MAINTENANCE = "maintenance"
MAINTENANCE_REASON = "maintenance: in a maintenance window, so not asked"


def askable(plan: SourcePlan) -> bool:
    """A server in maintenance is not asked: health (the one decider) sets that status while a window is open, and
    its answers then are not to be relied on (nor its load added to)."""
    return plan.status != MAINTENANCE


@dataclass(frozen=True)
class Reply:
    server: str
    state: Literal["answered", "invalid", "failed", "timed_out", "maintenance"]
    result: ToolCallResult | ResourceReadResult | None
    latency_ms: float | None
    reason: str = ""


async def _ask(query: FusionQuery, plan: SourcePlan, overall: Deadline, correlation_id: str) -> Reply:
    # Each source gets its own timeout, never past the overall deadline.
    deadline = Deadline.within(overall.cap(query.timeout_seconds))
    started = time.perf_counter()
    try:
        if query.tool:
            answer = await fleet_calls.call_tool(
                plan.server,
                query.tool,
                dict(query.arguments),
                deadline=deadline,
                correlation_id=correlation_id,
                caller=FUSION_CALLER,
            )
        else:
            answer = await fleet_calls.read_resource(
                plan.server, query.resource, deadline=deadline, correlation_id=correlation_id, caller=FUSION_CALLER
            )
    except RequestTimedOut as exc:
        return Reply(plan.server, "timed_out", None, (time.perf_counter() - started) * 1000.0, str(exc))
    except InvalidResponse as exc:
        # It answered, but not what it promised (e.g. structured content against its own output schema).
        return Reply(plan.server, "invalid", None, (time.perf_counter() - started) * 1000.0, _invalid_reason(exc))
    except ConnectionLayerError as exc:
        return Reply(plan.server, "failed", None, (time.perf_counter() - started) * 1000.0, str(exc))
    return Reply(plan.server, "answered", answer.result, answer.outcome.latency_ms)


def _invalid_reason(exc: InvalidResponse) -> str:
    reason = exc.reason
    if "Invalid structured content" in reason:
        return "violates the tool's output schema: " + reason.split(":", 1)[-1].strip()
    return reason


class LatencyHints:
    """What each source took last time, to send the slowest source's request first.

    Sending a request costs the fleet loop a millisecond or two of CPU; sent in plan order, the slowest source's
    request waits for the others' to be written, and that wait adds to the whole answer. Sent first, the others are
    written while it is in flight. Only a hint: kept on the fleet loop, bounded, and a wrong or missing one costs
    nothing but the order (unknown sources go first, as possibly slow).
    """

    LIMIT = 10_000

    def __init__(self) -> None:
        self._ms: dict[str, float] = {}

    def dispatch_order(self, plans: Sequence[SourcePlan]) -> list[int]:
        """Indexes into `plans`, the expected slowest first."""
        return sorted(range(len(plans)), key=lambda i: -self._ms.get(plans[i].server, float("inf")))

    def learn(self, replies: Sequence[Reply]) -> None:
        for reply in replies:
            if reply.latency_ms is None:
                continue
            if len(self._ms) >= self.LIMIT and reply.server not in self._ms:
                self._ms.clear()  # a registry far beyond the limit: start over rather than grow
            self._ms[reply.server] = reply.latency_ms


latency_hints = LatencyHints()


def _forget(task: asyncio.Task[Reply]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("fusion: a cancelled source call ended with %r", task.exception())


async def fan_out(query: FusionQuery, plans: Sequence[SourcePlan], correlation_id: str) -> list[Reply]:
    """One reply per plan, in the plans' order."""
    overall = Deadline.within(query.deadline_seconds)
    started = time.perf_counter()
    if not plans:
        return []
    order = [i for i in latency_hints.dispatch_order(plans) if askable(plans[i])]
    started_tasks = {i: asyncio.ensure_future(_ask(query, plans[i], overall, correlation_id)) for i in order}
    tasks = [started_tasks.get(i) for i in range(len(plans))]
    asked = [task for task in tasks if task is not None]
    pending: set[asyncio.Future[Reply]] = set()
    if asked:
        _, pending = await asyncio.wait(asked, timeout=max(0.0, overall.remaining()))
    for task in pending:
        task.cancel()
        task.add_done_callback(_forget)
    replies: list[Reply] = []
    waited_ms = (time.perf_counter() - started) * 1000.0
    for plan, task in zip(plans, tasks, strict=True):
        if task is None:
            replies.append(Reply(plan.server, MAINTENANCE, None, None, MAINTENANCE_REASON))
        elif task in pending:
            reason = f"no answer within the deadline of {query.deadline_seconds:g} s"
            replies.append(Reply(plan.server, "timed_out", None, waited_ms, reason))
        elif task.exception() is not None:
            logger.error("fusion: asking %s failed unexpectedly", plan.server, exc_info=task.exception())
            replies.append(Reply(plan.server, "failed", None, None, "an unexpected error in the orchestrator"))
        else:
            replies.append(task.result())
    latency_hints.learn(replies)
    return replies
