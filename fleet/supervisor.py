"""The fleet supervisor: keeps the sessions matched to the registry and reports what it observes of them.

It runs on the fleet loop, driven by events rather than polling:
- the registry changed (a view, the admin or an import asked for a reconcile; a full reconcile also runs now and
  then as a safety net for changes made by other processes) -> sessions are started, restarted or stopped;
- a session came up -> it is discovered exactly once (retried with a backoff while it cannot list its
  capabilities), and the discovery is recorded;
- a session went down, or a definition cannot be used -> observed, with the reason;
- a server announced that its tools, resources or prompts changed -> discovered again.

It decides no status: every observation goes to the status decider it is given (the health monitor, which also
checks every server and damps flapping; see fleet/status_decider.py). Database work goes to the worker thread it is
given (`OrmWorker`), never the loop. Every loop catches, logs and survives any exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings

from fleet.background import Guard
from fleet.call_recorder import SUPERVISOR, CallRecorder
from fleet.calls import server_target
from fleet.orm_worker import OrmWorker
from fleet.status_decider import DISCOVERY, SESSION, StatusDecider, StatusObservation
from mcp_client import (
    ConnectionHub,
    ConnectionLayerError,
    ConnectionLost,
    ConnectionStatus,
    FleetRuntime,
    RequestContext,
    ServerNotification,
    ServerTarget,
    ServerUnavailable,
    Subscription,
)
from registry.models import Server, ServerStatus
from registry.services import StatusTransition, capabilities_record

logger = logging.getLogger(__name__)

LIST_CHANGED = frozenset(
    {
        "notifications/tools/list_changed",
        "notifications/resources/list_changed",
        "notifications/prompts/list_changed",
    }
)
DISCOVERY_RETRY_INITIAL_SECONDS = 2.0
DISCOVERY_RETRY_MAX_SECONDS = 60.0
LIST_CHANGED_DEBOUNCE_SECONDS = 1.0


@dataclass
class Watched:
    """What the supervisor knows of one server (fleet loop only)."""

    server_id: int
    name: str
    target: ServerTarget | None
    session: int = 0  # the session (ConnectionStatus.sessions) last seen connected
    discovered_session: int = 0
    discovery: asyncio.Task[None] | None = None
    rediscover_at: float | None = None
    waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class Definition:
    server_id: int
    name: str
    target: ServerTarget | None
    problem: str = ""


def load_definitions() -> list[Definition]:
    """Every enabled server as a connection target (or the reason it cannot be one). Runs in the database thread."""
    definitions = []
    for server in Server.objects.enabled().order_by("name"):
        try:
            target, problem = server_target(server), ""
        except ValueError as error:
            target, problem = None, str(error)
        definitions.append(Definition(server.pk, server.name, target, problem))
    return definitions


class FleetSupervisor:
    """Built by the fleet application, which starts it with `start()` (from any thread) once its decider runs;
    `stop()` waits for the last call records to be written. The database worker is the application's."""

    def __init__(
        self,
        runtime: FleetRuntime,
        *,
        decider: StatusDecider,
        db: OrmWorker,
        reconcile_interval: float | None = None,
        flush_seconds: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.decider = decider
        self.reconcile_interval = reconcile_interval or settings.FLEET_RECONCILE_SECONDS
        self.flush_seconds = flush_seconds or settings.MCP_CALL_RECORD_FLUSH_SECONDS
        self.db = db
        self.watched: dict[str, Watched] = {}
        self.recorder: CallRecorder | None = None
        self._ids_by_name: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Loops restarted when they fail; observations run as guarded steps, cancelled on stop.
        self._guard = Guard("fleet supervisor")
        self._reconcile_wanted: asyncio.Event | None = None
        # A few discoveries at a time: after a restart every new session wants one, and hundreds of them sharing the
        # CPU would each run out of their request timeout (the timeout starts when a discovery gets its turn).
        self._discoveries: asyncio.Semaphore | None = None
        self._started = False

    @property
    def hub(self) -> ConnectionHub:
        return self.runtime.hub

    # -- lifecycle (any thread) -----------------------------------------------------------------------------------

    def start(self) -> None:
        self.runtime.run(self._start())

    async def _start(self) -> None:
        if self._started:
            return
        self._started = True
        self._reconcile_wanted = asyncio.Event()
        self._discoveries = asyncio.Semaphore(settings.FLEET_DISCOVERIES_AT_ONCE)
        states = self.hub.streams.states.subscribe(name="supervisor", maxsize=10_000)
        notifications = self.hub.streams.notifications.subscribe(
            name="supervisor", maxsize=1_000, accept=lambda item: item.method in LIST_CHANGED
        )
        outcomes = self.hub.streams.outcomes.subscribe(name="call-recorder", maxsize=50_000)
        self.recorder = CallRecorder(
            outcomes=outcomes,
            db=self.db,
            ids_by_name=lambda: dict(self._ids_by_name),
            flush_seconds=self.flush_seconds,
            retention=timedelta(days=settings.MCP_CALL_RECORD_RETENTION_DAYS),
            seen_resolution=timedelta(seconds=settings.MCP_LAST_SEEN_RESOLUTION_SECONDS),
        )
        await self.reconcile_once()
        self._tasks = [
            self._guard.loop("reconcile", self._reconcile_loop),
            self._guard.loop("states", lambda: self._state_loop(states)),
            self._guard.loop("notifications", lambda: self._notification_loop(notifications)),
            self._guard.loop("call-recorder", self.recorder.run),
        ]

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the loops and write the call records still queued (the database worker is stopped by its owner)."""
        if self._started and not self.runtime.stopped:
            try:
                self.runtime.run(self._stop(), timeout=timeout)
            except Exception:
                queued = self.recorder.depth if self.recorder is not None else 0
                logger.exception("fleet supervisor: stopping failed; %d call outcome(s) not written", queued)

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        background = [*self._guard.spawned, *(w.discovery for w in self.watched.values() if w.discovery is not None)]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self.recorder is not None:
            # What was queued when we stopped, in a bounded number of batches (nothing new comes in now).
            for _ in range(20):
                if not await self.recorder.flush_once():
                    break
        self._started = False

    def request_reconcile(self) -> None:
        """The registry changed: reconcile soon. Thread-safe and non-blocking."""
        event = self._reconcile_wanted
        if event is not None and not self.runtime.stopped:
            self.runtime.loop.call_soon_threadsafe(event.set)

    @property
    def loop_errors(self) -> int:
        """Exceptions its loops and steps caught (and survived)."""
        return self._guard.errors

    # -- reconcile --------------------------------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        assert self._reconcile_wanted is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconcile_wanted.wait(), self.reconcile_interval)
            self._reconcile_wanted.clear()
            await self.reconcile_once()

    async def reconcile_once(self) -> bool:
        """Match the running sessions to the enabled servers; True when anything changed."""
        definitions = await self.db.run(load_definitions)
        wanted = {definition.name: definition for definition in definitions}
        changed = False
        for name in [name for name in self.watched if name not in wanted]:
            watched = self.watched.pop(name)
            if watched.discovery is not None:
                watched.discovery.cancel()
            self._resolve_waiters(watched, {"ok": False, "error": f"{name} was removed or disabled"})
            changed = True
        # Names of servers that went away stay in the map until their last outcomes are written.
        self._ids_by_name.update({definition.name: definition.server_id for definition in definitions})
        targets: list[ServerTarget] = []
        for definition in definitions:
            watched = self.watched.get(definition.name)
            if watched is None or watched.server_id != definition.server_id:
                watched = Watched(definition.server_id, definition.name, None)
                self.watched[definition.name] = watched
                changed = True
            if definition.target is None:
                watched.target = None
                await self._observe(
                    watched,
                    ServerStatus.OFFLINE,
                    f"needs attention: its definition cannot be used: {definition.problem}",
                    source=SESSION,
                )
                continue
            if watched.target != definition.target:
                changed = True
            watched.target = definition.target
            targets.append(definition.target)
        running = set(self.hub.keys())
        wanted_running = {target.key for target in targets}
        for name in running - wanted_running:
            await self.hub.remove(name)
            changed = True
        for target in targets:
            connection = self.hub.get(target.key)
            if connection is None or connection.target != target or not connection.running:
                try:
                    await self.hub.ensure(target)
                except Exception:
                    logger.exception("MCP server %r: could not start its session", target.key)
            elif target.key in self.watched and self.watched[target.key].session == 0:
                self._on_state(connection.status())  # started before the supervisor: catch up on its state
        return changed

    # -- states, discovery -------------------------------------------------------------------------------------------

    async def _state_loop(self, states: Subscription[ConnectionStatus]) -> None:
        async for status in states:
            self._on_state(status)

    def _on_state(self, status: ConnectionStatus) -> None:
        watched = self.watched.get(status.key)
        if watched is None or watched.target is None:
            return
        connection = self.hub.get(status.key)
        if connection is None or connection.target != watched.target:
            return  # a state of a session we are replacing
        if status.state == "connected" and status.sessions != watched.session:
            watched.session = status.sessions
            self._start_discovery(watched, status.sessions)
        elif status.state == "backoff" and status.last_error:
            if watched.discovery is not None:
                watched.discovery.cancel()
            reason = status.last_error
            if status.needs_attention:
                reason = f"needs attention: {reason}"
            self._guard.spawn(self._went_down(watched, reason, status.last_error))

    async def _went_down(self, watched: Watched, reason: str, error: str) -> None:
        await self._observe(watched, ServerStatus.OFFLINE, reason, error=error, source=SESSION)
        self._resolve_waiters(watched, {"ok": False, "error": f"MCP server {watched.name!r}: {reason}"})

    def _start_discovery(self, watched: Watched, session: int) -> None:
        if watched.discovery is not None and not watched.discovery.done():
            watched.discovery.cancel()
        watched.discovery = asyncio.get_running_loop().create_task(
            self._guarded_discovery(watched, session), name=f"fleet-discover:{watched.name}"
        )

    async def _guarded_discovery(self, watched: Watched, session: int) -> None:
        pause = DISCOVERY_RETRY_INITIAL_SECONDS
        while watched.session == session and self.watched.get(watched.name) is watched:
            try:
                await self._discover(watched, session)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self._guard.errors += 1
                logger.exception(
                    "MCP server %r: discovery failed unexpectedly; trying again in %.0fs", watched.name, pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, DISCOVERY_RETRY_MAX_SECONDS)

    async def _discover(self, watched: Watched, session: int) -> None:
        """Discover one session's capabilities, once; while it cannot list them it is degraded and tried again."""
        delay = DISCOVERY_RETRY_INITIAL_SECONDS
        while watched.session == session and self.watched.get(watched.name) is watched:
            try:
                assert self._discoveries is not None
                async with self._discoveries:
                    answer = await self.hub.discover(
                        watched.name, wait=False, context=RequestContext(caller=SUPERVISOR, deadline=None)
                    )
            except (ServerUnavailable, ConnectionLost):
                return  # the session is gone; its state change says so
            except ConnectionLayerError as error:
                reason = f"connected, but listing its capabilities failed: {error}"
                await self._observe(watched, ServerStatus.DEGRADED, reason, error=str(error), source=DISCOVERY)
                self._resolve_waiters(watched, {"ok": False, "error": str(error)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, DISCOVERY_RETRY_MAX_SECONDS)
                continue
            discovered = answer.result
            recorded = await self.db.run(capabilities_record, server=watched.server_id, discovered=discovered)
            if recorded is None:
                return  # deleted meanwhile
            watched.discovered_session = session
            counts = {
                "tools": len(discovered.tools),
                "resources": len(discovered.resources),
                "resource_templates": len(discovered.resource_templates),
                "prompts": len(discovered.prompts),
            }
            await self._observe(
                watched,
                ServerStatus.ONLINE,
                f"connected (protocol {discovered.protocol_version})",
                protocol_version=discovered.protocol_version,
                error="",
                source=SESSION,
            )
            self._resolve_waiters(
                watched,
                {
                    "ok": True,
                    "changed": recorded.changed,
                    "snapshot_id": recorded.snapshot.pk,
                    "protocol_version": discovered.protocol_version,
                    "counts": counts,
                    "truncated": {listing: report.message for listing, report in discovered.truncation.items()},
                },
            )
            return

    async def discovery_of(self, name: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109 - an API budget
        """The outcome of the server's next (or current session's) discovery, for a caller who just registered or
        changed it. Resolved when the discovery succeeds, fails, or the connection fails."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + timeout
        if name not in self.watched:
            await self.reconcile_once()  # pick the new server up now rather than wait for the queued reconcile
        watched = self.watched.get(name)
        if watched is None:
            return {"ok": False, "error": f"{name} is not part of the fleet (disabled or unknown)"}
        watched.waiters.append(future)
        try:
            return await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return {"ok": False, "error": f"no discovery of {name} within {timeout:g}s; it goes on in the background"}
        finally:
            if future in watched.waiters:
                watched.waiters.remove(future)

    @staticmethod
    def _resolve_waiters(watched: Watched, outcome: dict[str, Any]) -> None:
        for future in watched.waiters:
            if not future.done():
                future.set_result(outcome)
        watched.waiters.clear()

    async def _notification_loop(self, notifications: Subscription[ServerNotification]) -> None:
        async for notification in notifications:
            watched = self.watched.get(notification.server)
            if watched is None or watched.discovered_session != watched.session:
                continue
            if watched.rediscover_at is None:
                # Several list_changed in a row (tools and prompts together) make one discovery.
                watched.rediscover_at = time.monotonic() + LIST_CHANGED_DEBOUNCE_SECONDS
                self._guard.spawn(self._rediscover_later(watched))

    async def _rediscover_later(self, watched: Watched) -> None:
        await asyncio.sleep(LIST_CHANGED_DEBOUNCE_SECONDS)
        watched.rediscover_at = None
        if self.watched.get(watched.name) is watched:
            self._start_discovery(watched, watched.session)

    # -- observations -------------------------------------------------------------------------------------------

    async def _observe(
        self,
        watched: Watched,
        status: str,
        reason: str,
        *,
        source: str,
        protocol_version: str | None = None,
        error: str | None = None,
    ) -> StatusTransition | None:
        """Report what was seen to the decider; it writes the status it decides (and returns that transition)."""
        return await self.decider.observe(
            StatusObservation(
                server_id=watched.server_id,
                name=watched.name,
                status=status,
                reason=reason,
                source=source,
                protocol_version=protocol_version,
                error=error,
            )
        )
