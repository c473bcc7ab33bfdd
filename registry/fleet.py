"""The registry's side of the live fleet: Server rows become connection-layer targets, and what the sessions see
(status, calls, capabilities) is written back through the services.

The sessions live in the process-wide `FleetRuntime` (its own event loop thread), so sync views, the admin,
management commands and the supervisor thread all reach the same sessions.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from registry.connections import (
    BackoffPolicy,
    CallOutcome,
    ConnectionLayerError,
    ConnectionStatus,
    FleetRuntime,
    ServerTarget,
    get_runtime,
)
from registry.models import Server, ServerStatus
from registry.services import (
    call_outcomes_record,
    capabilities_record,
    server_status_record,
)

logger = logging.getLogger(__name__)


class CallOutcomeBuffer:
    """Outcomes wait here (thread-safe, bounded) until the supervisor writes them in one batch."""

    def __init__(self, max_size: int = 50_000) -> None:
        self._items: deque[CallOutcome] = deque(maxlen=max_size)
        self._lock = threading.Lock()
        self.dropped = 0

    def append(self, outcome: CallOutcome) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(outcome)

    def drain(self) -> list[CallOutcome]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items


CALL_OUTCOMES = CallOutcomeBuffer()
_live = threading.Event()


def fleet_runtime() -> FleetRuntime:
    backoff = BackoffPolicy(initial=settings.MCP_RECONNECT_INITIAL_SECONDS, maximum=settings.MCP_RECONNECT_MAX_SECONDS)
    return get_runtime(on_call=CALL_OUTCOMES.append, backoff=backoff)


def fleet_is_live() -> bool:
    """True in a process that keeps sessions open for the whole fleet (the serve command)."""
    return _live.is_set()


def server_target(server: Server) -> ServerTarget:
    return ServerTarget(
        key=str(server.pk),
        transport=server.transport,  # type: ignore[arg-type]
        command=server.command,
        args=tuple(server.args),
        env=server.env,
        cwd=server.cwd or None,
        url=server.url,
        headers=server.headers,
        request_timeout=server.request_timeout_seconds,
        connect_timeout=settings.MCP_CONNECT_TIMEOUT_SECONDS,
        max_concurrency=server.max_concurrency,
    )


def _capability_counts(discovered: Any) -> dict[str, int]:
    return {
        "tools": len(discovered.tools),
        "resources": len(discovered.resources),
        "resource_templates": len(discovered.resource_templates),
        "prompts": len(discovered.prompts),
    }


def readable_error(error: BaseException | str, server: Server) -> str:
    """The layer names servers by key (the primary key); people know them by name."""
    return str(error).replace(f"MCP server {str(server.pk)!r}", f"MCP server {server.name!r}")


def server_discover(*, server: Server, failure_status: str = ServerStatus.OFFLINE) -> dict[str, Any]:
    """Open (or reuse) the server's session, discover everything it offers and record it.

    Returns an outcome instead of raising: a server that cannot be reached is a normal answer for an operator.
    `failure_status` is what a failed discovery makes the server: offline when nothing answers, degraded when
    the session is up but listing failed (the supervisor's case).
    """
    runtime = fleet_runtime()
    target = server_target(server)

    async def ensure_and_discover() -> Any:
        await runtime.hub.ensure(target)
        return await runtime.hub.discover(target.key)

    try:
        discovered = runtime.run(ensure_and_discover())
    except ConnectionLayerError as error:
        message = readable_error(error, server)
        server_status_record(server_id=server.pk, status=failure_status, reason=message, error=message)
        return {"ok": False, "error": message}
    recorded = capabilities_record(server=server, discovered=discovered)
    server_status_record(
        server_id=server.pk,
        status=ServerStatus.ONLINE,
        protocol_version=discovered.protocol_version,
        seen_at=datetime.now(UTC),
        error="",
    )
    return {
        "ok": True,
        "changed": recorded.changed,
        "snapshot_id": recorded.snapshot.pk,
        "protocol_version": discovered.protocol_version,
        "counts": _capability_counts(discovered),
    }


def server_reconcile(*, server_id: int) -> None:
    """Make the live session follow the registry after a change: (re)start, or close when disabled or deleted.

    Only where the fleet is live; elsewhere (a one-off command) sessions are opened on demand and closed at exit.
    """
    if not fleet_is_live():
        return
    runtime = fleet_runtime()
    server = Server.objects.filter(pk=server_id, enabled=True).first()
    try:
        if server is None:
            runtime.run(runtime.hub.remove(str(server_id)))
        else:
            runtime.run(runtime.hub.ensure(server_target(server)))
    except ConnectionLayerError:
        logger.exception("could not reconcile server %s", server_id)


_STATE_TO_STATUS = {"connected": ServerStatus.ONLINE, "backoff": ServerStatus.OFFLINE}


@dataclass
class FleetSupervisor:
    """Keeps the sessions in line with the registry, and the registry in line with the sessions.

    Each step is small and returns whether it found work, so a test can drive one step directly.
    """

    runtime: FleetRuntime
    probe_interval_seconds: float = 5.0
    _seen: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    _last_probe: float = 0.0

    def step_reconcile(self) -> bool:
        wanted = {str(server.pk): server_target(server) for server in Server.objects.enabled()}
        running = self.runtime.hub.statuses()
        changed = False
        for key in set(running) - set(wanted):
            self.runtime.run(self.runtime.hub.remove(key))
            self._seen.pop(key, None)
            changed = True
        for key, target in wanted.items():
            connection = self.runtime.hub.get(key)
            if connection is None or connection.target != target:
                self.runtime.run(self.runtime.hub.ensure(target))
                changed = True
        return changed

    def step_statuses(self) -> bool:
        """Write status transitions and discover on every new session (a restarted server may offer new tools)."""
        from registry.events import publish_fleet_status_sync

        found = False
        for key, status in self.runtime.hub.statuses().items():
            session_id = status.connected_since.isoformat() if status.connected_since else None
            fingerprint = (status.state, session_id if status.state == "connected" else status.last_error)
            if self._seen.get(key) == fingerprint or not key.isdigit():
                continue
            found = True
            new_status = _STATE_TO_STATUS.get(status.state)
            server = Server.objects.filter(pk=int(key)).first()
            if new_status is None or server is None:
                self._seen[key] = fingerprint
                continue
            if new_status == ServerStatus.ONLINE:
                # Connected but not listable (an outage answering errors): degraded, and tried again next round.
                outcome = server_discover(server=server, failure_status=ServerStatus.DEGRADED)
                if outcome["ok"]:
                    self._seen[key] = fingerprint
            else:
                self._seen[key] = fingerprint
                reason = readable_error(self._reason(status), server)
                server_status_record(
                    server_id=server.pk,
                    status=new_status,
                    reason=reason,
                    error=readable_error(status.last_error or "", server),
                )
            server.refresh_from_db()
            publish_fleet_status_sync(
                name=server.name,
                status=server.status,
                status_reason=server.status_reason,
                last_seen_at=server.last_seen_at.isoformat() if server.last_seen_at else None,
                protocol_version=server.protocol_version,
            )
        return found

    @staticmethod
    def _reason(status: ConnectionStatus) -> str:
        reason = status.last_error or "not connected"
        if status.next_retry_at is not None:
            reason += f" (next attempt at {status.next_retry_at:%H:%M:%S} UTC)"
        return reason

    def step_probe(self, now: float) -> bool:
        """A liveness probe per connected server now and then, so "last seen" means something between calls."""
        if now - self._last_probe < self.probe_interval_seconds:
            return False
        self._last_probe = now
        for key, status in self.runtime.hub.statuses().items():
            if status.state != "connected":
                continue
            try:
                self.runtime.run(self.runtime.hub.probe(key))
            except ConnectionLayerError as error:
                logger.info("probe of server %s failed: %s", key, error)
        return True

    def step_flush_calls(self) -> bool:
        outcomes = CALL_OUTCOMES.drain()
        if not outcomes:
            return False
        call_outcomes_record(outcomes)
        latest_ok: dict[int, datetime] = {}
        for outcome in outcomes:
            if outcome.ok and outcome.server_key.isdigit():
                key = int(outcome.server_key)
                latest_ok[key] = max(latest_ok.get(key, outcome.started_at), outcome.started_at)
        for server_id, seen_at in latest_ok.items():
            Server.objects.filter(pk=server_id).update(last_seen_at=seen_at)
        return True

    def run(self, stop: threading.Event, interval_seconds: float = 1.0) -> None:
        import time

        _live.set()
        try:
            while not stop.is_set():
                try:
                    self.step_reconcile()
                    self.step_statuses()
                    self.step_probe(time.monotonic())
                    self.step_flush_calls()
                except (DatabaseError, ConnectionLayerError):
                    # A locked database or a failing hub call is retried on the next round, not fatal.
                    logger.exception("fleet supervisor round failed; retrying")
                finally:
                    close_old_connections()
                stop.wait(interval_seconds)
            self.step_flush_calls()
        finally:
            _live.clear()
