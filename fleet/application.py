"""The fleet application: the one object that builds, owns, starts and stops everything that runs in the background.

It owns the fleet runtime (the loop thread and the connection hub, configured from settings), the database workers,
the pipeline, the health monitor (the one decider of a server's status), the supervisor (which keeps the sessions
matched to the registry and reports what it observes to the monitor), the balancer and transaction recovery.
`start()` starts them in this order, so that:
- the pipeline runs before anyone publishes (the first status changes already travel through it);
- the decider runs before the supervisor makes its first observation;
- recovery finishes open transactions once the sessions it needs are being opened.
`stop()` stops them in reverse. Every step is guarded and logged, and both are idempotent.

`serve`, the benchmarks and the test fixtures build the same graph through this class. The process has exactly one
reference to the running application (`running()`, like Django's `apps`); everything that needs the runtime, the
supervisor, the monitor, the pipeline or the balancer reaches it through that reference. A process that runs no
application (a management command, a test of one view) gets an on-demand one from `current()`: the runtime alone,
whose sessions are opened when a call needs them.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings

from fleet.orm_worker import OrmWorker
from mcp_client import BackoffPolicy, ConnectionHub, FleetRuntime
from mcp_client.outbound import OutboundPolicy
from registry import announcements
from registry.announcements import RegistryListener

if TYPE_CHECKING:
    from coordinator.balancer import Balancer
    from fleet.supervisor import FleetSupervisor
    from health.monitor import HealthMonitor
    from pipeline.observers import FleetEvents
    from pipeline.running import Pipeline

logger = logging.getLogger(__name__)


def hub_from_settings() -> ConnectionHub:
    """The connection hub as the settings configure it (reconnect backoff, outbound policy, connect slots)."""
    return ConnectionHub(
        backoff=BackoffPolicy(
            initial=settings.MCP_RECONNECT_INITIAL_SECONDS,
            maximum=settings.MCP_RECONNECT_MAX_SECONDS,
        ),
        outbound=OutboundPolicy.parse(settings.OUTBOUND_ALLOWED_NETWORKS),
        connects_at_once=settings.MCP_CONNECTS_AT_ONCE,
        connect_slot_seconds=settings.MCP_CONNECT_SLOT_SECONDS,
    )


class TransactionRecovery:
    """At start, on a thread of its own: finish every transaction a crash left open (confirm what was decided,
    cancel what was not), retrying while the sessions come up. Logs and survives any failure."""

    def __init__(self, deadline_seconds: float = 120.0) -> None:
        self.deadline_seconds = deadline_seconds
        self.recovered: list[tuple[int, str]] = []
        self.finished = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="transaction-recovery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        # Recovery is bounded by its own deadline; a stop does not cut a decided transaction short, it only stops
        # waiting for it (the next start finishes what is left by the same recorded decision).
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("transaction recovery still running at stop; the next start finishes the rest")

    def _run(self) -> None:
        from django.db import close_old_connections

        from coordinator.finishing import recover_transactions

        try:
            for tx in recover_transactions(deadline_seconds=self.deadline_seconds):
                self.recovered.append((tx.pk, tx.state))
                logger.info("transaction #%s recovered: %s", tx.pk, tx.state)
        except Exception:  # noqa: BLE001 - never take the server down; the admin can finish it by hand
            logger.exception("transaction recovery failed")
        finally:
            close_old_connections()
            self.finished.set()


class _SessionsFollowRegistry(RegistryListener):
    """A server created, changed or deleted (announced once committed): the supervisor reconciles the sessions."""

    def __init__(self, application: FleetApplication) -> None:
        self.application = application

    def registry_changed(self) -> None:
        self.application.request_reconcile()


class FleetApplication:
    """Build with the parts wanted (all of them for `serve`), then `start()`; `stop()` when done.

    The options are what tests and benchmarks tune; None means the setting's value.
    """

    def __init__(
        self,
        *,
        supervise: bool = True,
        pipeline: bool = True,
        producers: bool = True,
        recovery: bool = True,
        runtime: FleetRuntime | None = None,
        reconcile_interval: float | None = None,
        call_record_flush_seconds: float | None = None,
        health_refresh_seconds: float = 5.0,
        sample_flush_seconds: float = 1.0,
        rollup_seconds: float = 60.0,
        alert_seconds: float | None = None,
        producer_refresh_seconds: float = 5.0,
        recovery_deadline_seconds: float = 120.0,
    ) -> None:
        from coordinator.balancer import Balancer, BalancerPolicy

        # A runtime handed in belongs to the caller (a test that restarts the application over the same sessions).
        self._owns_runtime = runtime is None
        self.runtime = runtime or FleetRuntime(hub_from_settings())
        self.balancer: Balancer = Balancer(BalancerPolicy())
        self.supervise, self.with_pipeline, self.with_producers = supervise, pipeline, producers
        self.with_recovery = recovery
        self.options = {
            "reconcile_interval": reconcile_interval,
            "call_record_flush_seconds": call_record_flush_seconds,
            "health_refresh_seconds": health_refresh_seconds,
            "sample_flush_seconds": sample_flush_seconds,
            "rollup_seconds": rollup_seconds,
            "alert_seconds": alert_seconds,
            "producer_refresh_seconds": producer_refresh_seconds,
            "recovery_deadline_seconds": recovery_deadline_seconds,
        }
        # The database work of the loops, each family in its own thread (never on the fleet loop): the supervisor's
        # definitions, discoveries and call records with the producers' registry reads; health's samples, statuses
        # and alerts; the pipeline's event history.
        self.databases: dict[str, OrmWorker] = {}
        self.pipeline: Pipeline | None = None
        self.monitor: HealthMonitor | None = None
        self.supervisor: FleetSupervisor | None = None
        self.recovery: TransactionRecovery | None = None
        self._fleet_events: FleetEvents | None = None
        self._sessions_follow_registry = _SessionsFollowRegistry(self)
        self._started_steps: list[tuple[str, Callable[[], None]]] = []
        self._state = "new"  # new -> running -> stopped
        self._lock = threading.Lock()

    @classmethod
    def on_demand(cls) -> FleetApplication:
        """The runtime alone: for a process that runs no fleet, whose calls open their sessions when needed."""
        return cls(supervise=False, pipeline=False, recovery=False)

    @property
    def hub(self) -> ConnectionHub:
        return self.runtime.hub

    @property
    def running(self) -> bool:
        # Not before its runtime runs: a caller handed this application must be able to call through it.
        return self._state == "running" and self.runtime.started and not self.runtime.stopped

    @property
    def loop_errors(self) -> int:
        """Exceptions the supervisor's and the monitor's loops caught (and survived)."""
        errors = self.supervisor.loop_errors if self.supervisor is not None else 0
        return errors + (self.monitor.loop_errors if self.monitor is not None else 0)

    def request_reconcile(self) -> None:
        """The registry changed: the supervisor reconciles soon. Thread-safe, non-blocking; a no-op without one."""
        if self.supervisor is not None:
            self.supervisor.request_reconcile()

    # -- life ----------------------------------------------------------------------------------------------------

    def start(self) -> FleetApplication:
        """Start every part in order and make this the process's application. On a failure the parts already
        started are stopped again and the error is raised."""
        with self._lock:
            if self._state == "running":
                return self
            if self._state == "stopped":
                raise RuntimeError("this fleet application was stopped; build a new one")
            _install(self)
            self._state = "running"
        try:
            self._step("runtime", self.runtime.start, self._stop_runtime)
            if self.with_pipeline:
                self._step("pipeline", self._start_pipeline, self._stop_pipeline)
            if self.supervise:
                self._step("health monitor", self._start_monitor, self._stop_monitor)
                self._step("supervisor", self._start_supervisor, self._stop_supervisor)
            if self.with_recovery:
                self._step("transaction recovery", self._start_recovery, self._stop_recovery)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every started part in reverse order (each one guarded: a failure is logged, the rest still stop),
        then forget this application. Idempotent; safe from signal hooks."""
        with self._lock:
            if self._state != "running":
                return
            self._state = "stopped"
            steps, self._started_steps = self._started_steps, []
        for name, stop in reversed(steps):
            started = time.monotonic()
            try:
                stop()
            except Exception:
                logger.exception("fleet application: stopping the %s failed", name)
            else:
                logger.debug("fleet application: %s stopped in %.2fs", name, time.monotonic() - started)
        for name, worker in reversed(list(self.databases.items())):
            try:
                worker.shutdown(wait=True)
            except Exception:
                logger.exception("fleet application: stopping the %s database worker failed", name)
        self.databases.clear()
        _uninstall(self)

    def _step(self, name: str, start: Callable[[], None], stop: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            start()
        except Exception:
            logger.exception("fleet application: starting the %s failed", name)
            raise
        # Only a part that started is stopped again.
        self._started_steps.append((name, stop))
        logger.debug("fleet application: %s started in %.2fs", name, time.monotonic() - started)

    def _database(self, name: str) -> OrmWorker:
        worker = self.databases.get(name)
        if worker is None:
            worker = self.databases[name] = OrmWorker(name=name)
        return worker

    # -- the parts -----------------------------------------------------------------------------------------------

    def _stop_runtime(self) -> None:
        if self._owns_runtime:
            self.runtime.shutdown()

    def _start_pipeline(self) -> None:
        from pipeline.observers import FleetEvents
        from pipeline.running import Pipeline
        from pipeline.stores import event_store

        pipeline = Pipeline(
            event_store(worker=self._database("events-db")),
            producers=self.with_producers,
            producer_refresh_seconds=self.options["producer_refresh_seconds"],
            producer_db=self._database("fleet-db"),
        )
        self.runtime.run(pipeline.start())
        self.pipeline = pipeline  # published into from now on
        # What the registry announces (status writes, servers seen) travels as fleet.status / fleet.seen events.
        self._fleet_events = FleetEvents(pipeline.bus)
        announcements.connect(self._fleet_events)

    def _stop_pipeline(self) -> None:
        if self._fleet_events is not None:
            announcements.disconnect(self._fleet_events)
        if self.pipeline is not None and not self.runtime.stopped:
            self.runtime.run(self.pipeline.stop(), timeout=10.0)

    def _start_monitor(self) -> None:
        from health.monitor import HealthMonitor

        self.monitor = HealthMonitor(
            self.runtime,
            db=self._database("health-db"),
            refresh_seconds=self.options["health_refresh_seconds"],
            flush_seconds=self.options["sample_flush_seconds"],
            rollup_seconds=self.options["rollup_seconds"],
            alert_seconds=self.options["alert_seconds"],
        )
        self.monitor.start()

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()

    def _start_supervisor(self) -> None:
        from fleet.supervisor import FleetSupervisor

        assert self.monitor is not None
        self.supervisor = FleetSupervisor(
            self.runtime,
            decider=self.monitor,
            db=self._database("fleet-db"),
            reconcile_interval=self.options["reconcile_interval"],
            flush_seconds=self.options["call_record_flush_seconds"],
        )
        self.supervisor.start()
        announcements.connect(self._sessions_follow_registry)

    def _stop_supervisor(self) -> None:
        announcements.disconnect(self._sessions_follow_registry)
        if self.supervisor is not None:
            self.supervisor.stop()

    def _start_recovery(self) -> None:
        self.recovery = TransactionRecovery(deadline_seconds=self.options["recovery_deadline_seconds"])
        self.recovery.start()

    def _stop_recovery(self) -> None:
        if self.recovery is not None:
            self.recovery.stop()


# -- the process's one application -------------------------------------------------------------------------------

_running: FleetApplication | None = None
_install_lock = threading.Lock()
_on_demand_lock = threading.Lock()


def _install(application: FleetApplication) -> None:
    global _running
    with _install_lock:
        previous = _running
        replacing = previous is not None and previous is not application and previous._state == "running"
        if replacing and (previous.supervise or previous.with_pipeline or previous.with_recovery):
            raise RuntimeError("a fleet application is already running in this process; stop it first")
        _running = application
    if replacing:
        # An on-demand runtime (sessions some call opened) gives way to the application being started.
        previous.stop()
        with _install_lock:
            _running = application


def _uninstall(application: FleetApplication) -> None:
    global _running
    with _install_lock:
        if _running is application:
            _running = None


def running() -> FleetApplication | None:
    """The application running in this process, if any (it is never started by asking)."""
    application = _running
    return application if application is not None and application.running else None


def _live_runtime(application: FleetApplication | None) -> bool:
    # While an application stops, its parts still finish their work on its loop: they keep reaching it.
    return application is not None and application.runtime.started and not application.runtime.stopped


def current() -> FleetApplication:
    """The running (or stopping) application; when none runs, an on-demand one (the runtime alone) is started."""
    application = _running
    if _live_runtime(application):
        return application  # type: ignore[return-value] # the common case, on every call: no locks
    with _on_demand_lock:  # two threads asking at once get the same one
        application = _running
        if _live_runtime(application):
            return application  # type: ignore[return-value]
        return FleetApplication.on_demand().start()


def stop_running() -> None:
    """Stop the process's application, if one runs (the last resort at exit, and between tests)."""
    application = _running
    if application is not None:
        application.stop()


atexit.register(stop_running)
