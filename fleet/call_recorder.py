"""Writes the outcome of every MCP request as a `CallRecord`, in batches, off the fleet loop, and keeps the table
bounded.

It reads the session outcome stream like any other subscriber (bounded; a recorder that falls behind loses the
oldest outcomes and counts them). Successful liveness checks of the supervisor only move "last seen": at one check
per server every few seconds they would be most of the table and say nothing a status does not. Everything else
(real calls, discoveries, failed checks, requests from servers) is kept for `MCP_CALL_RECORD_RETENTION_DAYS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone

from fleet.orm_worker import OrmWorker
from mcp_client import CallOutcome, Subscription
from registry import announcements
from registry.services import call_outcomes_record, call_records_prune, servers_seen_record

logger = logging.getLogger(__name__)

SUPERVISOR = "supervisor"
MAX_BATCH = 5_000


# Callers whose successful calls run on the fleet's own schedule and are not stored one by one: the liveness probes,
# the health monitor's checks, and the event pipeline's resource reads and polls (a ticker read every second per
# symbol would be most of the rows and tell nothing its counters do not). They still update "last seen"; their
# failures are always stored.
STREAMING_CALLER = "pipeline"
# The health monitor's checks: it keeps them itself, as samples.
HEALTH_CALLER = "health"


def is_routine_check(outcome: CallOutcome) -> bool:
    if not outcome.ok:
        return False
    if outcome.caller in (STREAMING_CALLER, HEALTH_CALLER):
        return True
    return outcome.operation == "probe" and outcome.caller in (SUPERVISOR, "connection-watch")


class CallRecorder:
    def __init__(
        self,
        *,
        outcomes: Subscription[CallOutcome],
        db: OrmWorker,
        ids_by_name: Callable[[], dict[str, int]],
        flush_seconds: float,
        retention: timedelta,
        prune_every_seconds: float = 600.0,
        seen_resolution: timedelta = timedelta(seconds=30),
    ) -> None:
        self._outcomes = outcomes
        self._db = db
        self._ids_by_name = ids_by_name
        self._flush_seconds = flush_seconds
        self._retention = retention
        self._prune_every = prune_every_seconds
        self._last_prune = 0.0
        self._seen_resolution = seen_resolution
        self._seen_written: dict[str, datetime] = {}
        self.written = 0
        self.pruned = 0

    @property
    def dropped(self) -> int:
        return self._outcomes.dropped

    @property
    def depth(self) -> int:
        return self._outcomes.depth

    async def flush_once(self) -> bool:
        """Write what is queued now; True when there was something."""
        batch = self._outcomes.drain(MAX_BATCH)
        if not batch:
            return False
        kept = [outcome for outcome in batch if not is_routine_check(outcome)]
        seen: dict[str, datetime] = {}
        for outcome in batch:
            if outcome.ok:
                seen[outcome.server_key] = max(seen.get(outcome.server_key, outcome.started_at), outcome.started_at)
        # "Last seen" is written when it moved by the resolution: a thousand servers checked every few seconds
        # would otherwise be an UPDATE per check, the largest database cost of the whole fleet. Listeners (the
        # dashboards) still hear every batch.
        due = {
            name: at
            for name, at in seen.items()
            if name not in self._seen_written or at - self._seen_written[name] >= self._seen_resolution
        }
        ids_by_name = self._ids_by_name()
        self.written += await self._db.run(_write, kept, due, ids_by_name)
        self._seen_written.update(due)
        if len(self._seen_written) > 2 * len(ids_by_name) + 1_000:
            self._seen_written.clear()  # names of servers long gone: bounded, at the cost of one early write each
        announcements.servers_seen(seen)  # here, on the fleet loop, once the batch is written
        return True

    async def prune_once(self) -> int:
        cutoff = timezone.now() - self._retention
        deleted = await self._db.run(call_records_prune, older_than=cutoff)
        self.pruned += deleted
        if deleted:
            logger.info("pruned %d call record(s) older than %s", deleted, cutoff.isoformat(timespec="seconds"))
        return deleted

    async def run(self) -> None:
        while True:
            await self._outcomes.wait(self._flush_seconds)
            # A short pause lets a burst gather into one batch instead of one write per outcome.
            await asyncio.sleep(min(self._flush_seconds, 0.5))
            while await self.flush_once():
                if self._outcomes.depth < MAX_BATCH:
                    break
            if time.monotonic() - self._last_prune >= self._prune_every:
                self._last_prune = time.monotonic()
                await self.prune_once()


def _write(outcomes: list[CallOutcome], seen: dict[str, datetime], ids_by_name: dict[str, int]) -> int:
    written = call_outcomes_record(outcomes, ids_by_name)
    if seen:
        servers_seen_record(seen, ids_by_name)
    return written
