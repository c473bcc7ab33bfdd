"""The fleet application: one object builds the runtime's parts, starts them in order, stops them in reverse, and is
the process's one reference to them."""

from __future__ import annotations

import logging
import sys

import pytest
from django.conf import settings

from fleet import application as fleet_application
from fleet import calls as fleet_calls
from fleet.application import FleetApplication
from mcp_client.processes import child_pids
from registry.models import Server, ServerStatus
from registry.services import server_create
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def steps(caplog: pytest.LogCaptureFixture, verb: str) -> list[str]:
    suffix = f" {verb} in "
    return [
        record.getMessage().removeprefix("fleet application: ").split(suffix)[0]
        for record in caplog.records
        if record.name == "fleet.application" and suffix in record.getMessage()
    ]


def test_it_starts_its_parts_in_order_and_stops_them_in_reverse(start_fleet, caplog):
    caplog.set_level(logging.DEBUG, logger="fleet.application")
    fleet = start_fleet(recovery=True)
    assert steps(caplog, "started") == ["runtime", "pipeline", "health monitor", "supervisor", "transaction recovery"]
    # Health is the one decider; the supervisor only reports to it.
    assert fleet.supervisor is not None and fleet.supervisor.decider is fleet.monitor
    assert fleet_application.running() is fleet and fleet_calls.fleet_runtime() is fleet.runtime
    assert fleet.recovery is not None and fleet.recovery.finished.wait(10)

    fleet.stop()
    assert steps(caplog, "stopped") == ["transaction recovery", "supervisor", "health monitor", "pipeline", "runtime"]
    assert fleet_application.running() is None and fleet.runtime.stopped and fleet.databases == {}
    fleet.stop()  # idempotent
    assert steps(caplog, "stopped").count("runtime") == 1


def test_a_part_that_fails_to_start_stops_those_started_before(start_fleet, monkeypatch):
    from health.monitor import HealthMonitor

    def broken(self: HealthMonitor) -> None:
        raise RuntimeError("injected: the monitor cannot start")

    monkeypatch.setattr(HealthMonitor, "start", broken)
    fleet = FleetApplication()
    with pytest.raises(RuntimeError, match="injected"):
        fleet.start()
    assert fleet.runtime.stopped and fleet.supervisor is None and fleet.databases == {}
    assert fleet_application.running() is None


def test_one_application_per_process_and_an_on_demand_runtime_gives_way(start_fleet):
    # A call with no fleet running (a management command, a test of one view) gets an on-demand runtime...
    on_demand = fleet_application.current()
    assert on_demand.supervisor is None and on_demand.pipeline is None
    assert fleet_application.current() is on_demand
    # ...which a full application replaces; a second full one is refused while the first runs.
    fleet = start_fleet()
    assert on_demand.runtime.stopped and fleet_application.current() is fleet
    with pytest.raises(RuntimeError, match="already running"):
        FleetApplication().start()
    assert fleet_application.running() is fleet


def test_stopping_closes_every_session_and_stops_every_child(start_fleet):
    server_create(
        name="alpha",
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha"],
        cwd=str(settings.BASE_DIR),
    )
    fleet = start_fleet()
    wait_for(lambda: Server.objects.get(name="alpha").status == ServerStatus.ONLINE, what="online")
    pid = fleet.hub.statuses()["alpha"].pid
    assert pid in child_pids()
    fleet.stop()
    assert pid not in child_pids()
