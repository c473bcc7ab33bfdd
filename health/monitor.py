"""The health monitor: checks every server on its own interval, keeps the samples, and decides every status.

It runs on the fleet loop, built and started by the fleet application before the supervisor, whose observations (a
session up or down, a discovery that failed) come here: this is the one place that decides and writes a server's
status (through the registry's compare-and-set, with history, so the change travels to the dashboards as
`fleet.status`).

A check: the era's liveness probe with its latency, then, when one is configured, a synthetic tool call whose
answer must meet an expectation. Checks of all servers run concurrently, each with its deadline; a hung server only
delays itself. Outcomes of real calls (anyone but the fleet's own machinery) are kept too, as passive samples.
Samples are written in batches by the database thread the application gives it; rollups and retention run every
minute. Maintenance windows put their servers in `maintenance`, whose checks are left out of availability. Every
loop catches, logs, goes on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from fleet import calls as fleet_calls
from fleet.background import DueQueue, Guard
from fleet.call_recorder import HEALTH_CALLER, STREAMING_CALLER, SUPERVISOR
from fleet.orm_worker import OrmWorker
from fleet.status_decider import SESSION, StatusObservation
from health.alerting import evaluate
from health.config import CheckConfig, check_config
from health.damping import CheckVerdict, DampedStatus
from health.expectations import answer_problem
from health.models import MaintenanceWindow, SampleKind
from health.notify import deliver_due
from health.rollups import roll_up
from health.samples import PendingSample, samples_record
from mcp_client import ConnectionLayerError, FleetRuntime
from mcp_client.deadlines import Deadline
from pipeline.running import publish
from registry import announcements
from registry.models import Server, ServerStatus
from registry.services import StatusTransition, server_status_transition

logger = logging.getLogger(__name__)

SOURCE = "health"
MACHINERY = {SUPERVISOR, "connection-watch", STREAMING_CALLER, HEALTH_CALLER}
PASSIVE_OPERATIONS = {"tools/call", "resources/read"}
# Failures that say nothing about the server: the caller's own mistakes, its cancellations, and "no session" (the
# session's state already tells that).
NOT_THE_SERVERS_FAULT = {"client_error", "cancelled", "unavailable"}
MAX_BUFFERED_SAMPLES = 100_000
# Checks falling due within this much of each other start together: their requests then share the event loop's
# turns (one poll of the sockets for many answers) instead of each waking it on its own; a tenth of a second is
# nothing against an interval of seconds.
CHECK_ROUND_SECONDS = 0.1
FIRST_CONNECT_RECHECK_SECONDS = 2.0


@dataclass
class Tracked:
    config: CheckConfig
    damped: DampedStatus
    written: tuple[str, str] = ("", "")
    checking: bool = False
    maintenance: str = ""  # the open window's name, if any
    last_check: dict[str, Any] = field(default_factory=dict)


def load_configs() -> tuple[dict[str, CheckConfig], dict[str, tuple[str, str]], dict[str, str]]:
    """Every enabled server's check config and current status, and the maintenance window open for each now.

    Runs every few seconds over the whole fleet, so it reads plain values (no model instances, tags in one query).
    """
    configs: dict[str, CheckConfig] = {}
    statuses: dict[str, tuple[str, str]] = {}
    enabled = Server.objects.enabled()
    tags = enabled.tag_names()
    for server_id, name, metadata, server_type, status, reason in enabled.values_list(
        "id", "name", "metadata", "server_type", "status", "status_reason"
    ):
        configs[name] = check_config(
            server_id=server_id, name=name, metadata=metadata, server_type=server_type, tags=tags.get(server_id, ())
        )
        statuses[name] = (status, reason)
    now = datetime.now(UTC)
    open_windows: dict[str, str] = {}
    for window in MaintenanceWindow.objects.filter(starts_at__lte=now).prefetch_related("servers"):
        if not window.is_open(now):
            continue
        named = {server.name for server in window.servers.all()}
        for config in configs.values():
            if (
                config.name in named
                or (window.server_type and config.server_type == window.server_type)
                or (window.tag and window.tag in config.tags)
            ):
                open_windows.setdefault(config.name, window.name)
    return configs, statuses, open_windows


class HealthMonitor:
    def __init__(
        self,
        runtime: FleetRuntime,
        *,
        db: OrmWorker,
        refresh_seconds: float = 5.0,
        flush_seconds: float = 1.0,
        rollup_seconds: float = 60.0,
        alert_seconds: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.refresh_seconds = refresh_seconds
        self.flush_seconds = flush_seconds
        self.rollup_seconds = rollup_seconds
        self.alert_seconds = alert_seconds if alert_seconds is not None else settings.HEALTH_ALERT_EVALUATION_SECONDS
        self.db = db  # the application's; it stops it after this monitor
        self.tracked: dict[str, Tracked] = {}
        self.samples: deque[PendingSample] = deque()
        self.dropped_samples = 0
        self.checks_done = 0
        self._guard = Guard("health monitor")
        self._checks = DueQueue()
        self._tasks: list[asyncio.Task[None]] = []
        self._outcomes: Any = None
        self._alert_round: asyncio.Future[list[dict[str, Any]]] | None = None

    # -- life ------------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.runtime.run(self._start())

    async def _start(self) -> None:
        await self.refresh()
        self._outcomes = fleet_calls.subscribe_outcomes(name="health-passive", maxsize=50_000)
        self._tasks = [
            self._guard.loop("checks", self._check_loop),
            self._guard.loop("refresh", self._refresh_loop),
            self._guard.loop("samples", self._flush_loop),
            self._guard.loop("rollups", self._rollup_loop),
            self._guard.loop("passive", self._passive_loop),
            self._guard.loop("alerts", self._alert_loop),
        ]

    def stop(self, timeout: float = 15.0) -> None:
        if not self.runtime.stopped:
            try:
                self.runtime.run(self._stop(), timeout=timeout)
            except Exception:
                logger.exception("health monitor: stopping failed; %d samples not written", len(self.samples))

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._alert_round is not None and not self._alert_round.done():
            # Bounded by the webhooks' own timeout (they are sent concurrently), and a little for the database.
            await asyncio.wait({self._alert_round}, timeout=settings.HEALTH_WEBHOOK_TIMEOUT_SECONDS + 5)
            if not self._alert_round.done():
                self._alert_round.cancel()
            elif not self._alert_round.cancelled() and self._alert_round.exception() is not None:
                logger.error("health monitor: the last alert round failed: %s", self._alert_round.exception())
        await self._guard.cancel_spawned()
        if self._outcomes is not None:
            self._outcomes.close()
        await self.flush()

    @property
    def loop_errors(self) -> int:
        return self._guard.errors

    # -- the registry, followed ----------------------------------------------------------------------------------------

    async def refresh(self) -> None:
        configs, statuses, open_windows = await self.db.run(load_configs)
        for name in set(self.tracked) - set(configs):
            del self.tracked[name]
        now = time.monotonic()
        for name, config in configs.items():
            tracked = self.tracked.get(name)
            if tracked is None:
                status, reason = statuses[name]
                tracked = Tracked(config=config, damped=DampedStatus(status=status, reason=reason))
                tracked.written = (status, reason)
                self.tracked[name] = tracked
                # Spread over the interval: a thousand servers registered at once are not all checked at once.
                self._schedule(name, now + random.uniform(0.2, max(0.3, config.interval_seconds)))
            elif tracked.config != config:
                tracked.config = config
                self._schedule(name, now + min(1.0, config.interval_seconds))
            window = open_windows.get(name, "")
            if window != tracked.maintenance:
                tracked.maintenance = window
                self._guard.spawn(self._apply(tracked))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh()

    # -- checks ------------------------------------------------------------------------------------------------------

    def _schedule(self, name: str, due: float) -> None:
        if name in self.tracked:
            self._checks.schedule(name, due)

    async def _check_loop(self) -> None:
        while True:
            now = time.monotonic()
            for name in self._checks.pop_due(now):
                tracked = self.tracked.get(name)
                if tracked is None or tracked.checking:
                    continue  # removed since; or still checking, and it reschedules itself when done
                tracked.checking = True
                self._guard.spawn(self._check(tracked))
            await self._checks.wait(now, 1.0, granularity=CHECK_ROUND_SECONDS)

    async def check_now(self, name: str) -> dict[str, Any]:
        """One check of a server, now (tests and the API's "check now"); the result as the API shows it."""
        tracked = self.tracked.get(name)
        if tracked is None:
            raise KeyError(name)
        await self._check(tracked, reschedule=False)
        return tracked.last_check

    async def _check(self, tracked: Tracked, reschedule: bool = True) -> None:
        config = tracked.config
        started = time.monotonic()
        if reschedule and _not_connected_yet(config.name):
            # Its first session is still being set up (a large fleet starting connects a few dozen at a time):
            # nothing to check yet, and no failure to count. Look again shortly.
            tracked.checking = False
            self._schedule(config.name, started + min(config.interval_seconds, FIRST_CONNECT_RECHECK_SECONDS))
            return
        try:
            verdict = await self._run_check(tracked)
            self.checks_done += 1
            tracked.damped.after_check(verdict, config.policy)
            await self._apply(tracked, error=verdict.error or "")
            tracked.last_check = {
                "server": config.name,
                "ok": verdict.reachable and verdict.expectation_ok is not False,
                "latency_ms": verdict.latency_ms,
                "detail": verdict.detail,
                "error": verdict.error,
                "status": tracked.written[0],
            }
            publish("health.checks", "check", tracked.last_check, server=config.name)
        finally:
            tracked.checking = False
            if reschedule and self.tracked.get(config.name) is tracked:
                # Every interval from the start of the last check (its own latency does not stretch the period),
                # and never sooner than a tenth of the interval after its end.
                now = time.monotonic()
                self._schedule(config.name, max(started + config.interval_seconds, now + config.interval_seconds / 10))

    async def _run_check(self, tracked: Tracked) -> CheckVerdict:
        config = tracked.config
        now = datetime.now(UTC)
        in_maintenance = bool(tracked.maintenance)
        timeout = min(config.synthetic.timeout_seconds if config.synthetic else 5.0, config.interval_seconds)
        try:
            answer = await fleet_calls.check_liveness(
                config.name, deadline=Deadline.within(max(timeout, 1.0)), caller=HEALTH_CALLER
            )
        except ConnectionLayerError as error:
            message = str(error)[:300]
            self._keep(config, now, SampleKind.PROBE, False, None, "", message, in_maintenance)
            return CheckVerdict(reachable=False, error=message)
        probe_ms = round(answer.result, 2)
        self._keep(config, now, SampleKind.PROBE, True, probe_ms, "", "", in_maintenance)
        if config.synthetic is None:
            return CheckVerdict(reachable=True, latency_ms=probe_ms, detail=f"probe {probe_ms:.0f} ms")
        synthetic = config.synthetic
        started = datetime.now(UTC)
        try:
            call = await fleet_calls.call_tool(
                config.name,
                synthetic.tool,
                synthetic.arguments,
                deadline=Deadline.within(synthetic.timeout_seconds),
                caller=HEALTH_CALLER,
            )
        except ConnectionLayerError as error:
            message = f"{synthetic.tool}: {str(error)[:280]}"
            self._keep(config, started, SampleKind.SYNTHETIC, False, None, synthetic.tool, message, in_maintenance)
            return CheckVerdict(reachable=True, latency_ms=probe_ms, expectation_ok=False, error=message)
        call_ms = round(call.outcome.latency_ms, 2)
        problem = answer_problem(synthetic.tool, synthetic.expect, call.result)
        self._keep(
            config,
            started,
            SampleKind.SYNTHETIC,
            problem is None,
            call_ms,
            synthetic.tool,
            problem or "",
            in_maintenance,
        )
        slowest = max(probe_ms, call_ms)
        return CheckVerdict(
            reachable=True,
            latency_ms=slowest,
            expectation_ok=problem is None,
            error=problem or "",
            detail=f"probe {probe_ms:.0f} ms, {synthetic.tool} {call_ms:.0f} ms",
        )

    # -- status --------------------------------------------------------------------------------------------------------

    async def observe(self, observation: StatusObservation) -> StatusTransition | None:
        """The supervisor's observations (see fleet/status_decider.py), damped like checks."""
        tracked = self.tracked.get(observation.name)
        if tracked is None:
            await self.refresh()
            tracked = self.tracked.get(observation.name)
            if tracked is None:
                return None  # deleted or disabled meanwhile
        policy = tracked.config.policy
        if observation.source == SESSION and observation.status == ServerStatus.OFFLINE:
            tracked.damped.session_down(policy, observation.reason)
        elif observation.source == SESSION and observation.status == ServerStatus.ONLINE:
            tracked.damped.session_up(policy, observation.reason)
            # A first check of the new session soon, spread so a reconnect storm is not a check storm.
            interval = tracked.config.interval_seconds
            self._schedule(observation.name, time.monotonic() + random.uniform(0.2, max(0.5, min(interval, 5.0))))
        else:
            tracked.damped.observed(observation.status, observation.reason, policy)
        return await self._apply(tracked, protocol_version=observation.protocol_version, error=observation.error)

    async def _apply(
        self, tracked: Tracked, *, protocol_version: str | None = None, error: str | None = None
    ) -> StatusTransition | None:
        status, reason = tracked.damped.status, tracked.damped.reason
        if tracked.maintenance:
            status, reason = ServerStatus.MAINTENANCE, f"in maintenance window {tracked.maintenance!r}; {reason}"
        if (status, reason) == tracked.written and protocol_version is None:
            return None
        transition = await self.db.run(
            server_status_transition,
            server_id=tracked.config.server_id,
            status=status,
            reason=reason,
            source=SOURCE,
            protocol_version=protocol_version,
            error=error,
        )
        if transition is not None:
            # Announced here, on the fleet loop that decided it, once the write came back from the database thread.
            announcements.status_changed(transition)
            tracked.written = (transition.to_status, transition.reason)
            if transition.changed:
                logger.info("MCP server %r is %s: %s", tracked.config.name, status, reason)
        return transition

    # -- samples -----------------------------------------------------------------------------------------------------

    def _keep(
        self,
        config: CheckConfig,
        at: datetime,
        kind: str,
        ok: bool,
        latency_ms: float | None,
        tool: str,
        error: str,
        in_maintenance: bool,
    ) -> None:
        if len(self.samples) >= MAX_BUFFERED_SAMPLES:
            self.samples.popleft()
            self.dropped_samples += 1
        self.samples.append(PendingSample(config.server_id, at, kind, ok, latency_ms, tool, error, in_maintenance))

    async def flush(self) -> int:
        batch = [self.samples.popleft() for _ in range(min(5_000, len(self.samples)))]
        if batch:
            known = {tracked.config.server_id for tracked in self.tracked.values()}
            await self.db.run(samples_record, [s for s in batch if s.server_id in known])
        return len(batch)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            while await self.flush() >= 5_000:
                pass

    async def _rollup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rollup_seconds)
            await self.db.run(roll_up)

    async def alert_round(self) -> list[dict[str, Any]]:
        """Evaluate the rules once, tell the dashboards what changed, send what is due."""
        changes = await self.db.run(evaluate)
        for change in changes:
            publish("health.alerts", change["what"], change, server=change["server"])
        await deliver_due(self.db)
        return changes

    async def _alert_loop(self) -> None:
        while True:
            await asyncio.sleep(self.alert_seconds)
            # Shielded: a stop lets the round finish (see _stop), so a webhook that was sent is also recorded as
            # sent, and a restart does not send it again.
            self._alert_round = asyncio.ensure_future(self.alert_round())
            try:
                await asyncio.shield(self._alert_round)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._guard.errors += 1
                logger.exception("health monitor: an alert round failed")

    async def _passive_loop(self) -> None:
        async for outcome in self._outcomes:
            if outcome.caller in MACHINERY or outcome.operation not in PASSIVE_OPERATIONS:
                continue
            tracked = self.tracked.get(outcome.server_key)
            if tracked is None:
                continue
            if outcome.error_kind not in NOT_THE_SERVERS_FAULT:
                tracked.damped.note_call(failed=not outcome.ok)
            self._keep(
                tracked.config,
                outcome.started_at,
                SampleKind.PASSIVE,
                outcome.ok,
                outcome.latency_ms,
                outcome.target_name if outcome.operation == "tools/call" else "",
                outcome.error_message or "",
                bool(tracked.maintenance),
            )

    def stats(self) -> dict[str, Any]:
        return {
            "servers": len(self.tracked),
            "checks_done": self.checks_done,
            "samples_buffered": len(self.samples),
            "samples_dropped": self.dropped_samples,
            "loop_errors": self.loop_errors,
        }


def _not_connected_yet(name: str) -> bool:
    status = fleet_calls.connection_status(name)
    return status is None or (status.state == "connecting" and status.sessions == 0)
