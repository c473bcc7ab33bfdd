"""The health monitor over the real protocol: demo exchanges and a test server with injected behaviour."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from health import trends
from health.models import HealthSample, MaintenanceWindow
from health.selectors import fleet_health
from registry.models import Server, ServerStatus, StatusChange
from registry.services import server_create
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TEST_SERVERS = Path(__file__).parents[1] / "mcp_servers"


def status_of(name: str) -> str:
    return Server.objects.get(name=name).status


def exchange(name: str, *extra: str, health: dict | None = None) -> Server:
    return server_create(
        name=name,
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha", *extra],
        cwd=str(django_settings.BASE_DIR),
        metadata={"health": {"interval_seconds": 1, "retries": 2, "recover_after": 2, **(health or {})}},
    )


@pytest.fixture
def monitor(live_fleet):
    return live_fleet.monitor


def test_an_outage_goes_down_after_the_retry_budget_and_comes_back(monitor, live_fleet):
    exchange("outage", "--outage", "4:9")
    live_fleet.request_reconcile()
    wait_for(lambda: status_of("outage") == ServerStatus.OFFLINE, what="offline during the outage")
    server = Server.objects.get(name="outage")
    assert "3 checks in a row failed" in server.status_reason and "outage" in server.status_reason
    wait_for(lambda: status_of("outage") == ServerStatus.ONLINE, what="back after the outage")
    history = list(StatusChange.objects.filter(server=server).order_by("at").values_list("to_status", "source"))
    assert [status for status, _ in history] == ["online", "pending", "offline", "online"]
    assert {source for _, source in history} == {"health"}  # one decider
    assert live_fleet.supervisor.decider is monitor
    wait_for(lambda: HealthSample.objects.filter(server=server, ok=False).exists(), what="failed samples kept")
    (figures,) = fleet_health([server])
    assert 0 < figures["availability"]["24h"] < 1 and figures["checks_24h"] >= 5


def test_a_synthetic_check_whose_expectation_fails_makes_the_server_unhealthy(monitor, live_fleet):
    impossible = {
        "tool": "get_quote",
        "arguments": {"symbol": "BTC-USD"},
        "expect": {"path": "bid", "op": "lt", "value": 0},
    }
    exchange("wrong-answers", health={"synthetic": impossible, "interval_seconds": 0.5})
    live_fleet.request_reconcile()
    wait_for(lambda: status_of("wrong-answers") == ServerStatus.UNHEALTHY, what="unhealthy")
    reason = Server.objects.get(name="wrong-answers").status_reason
    assert "get_quote: bid is" in reason and "expected lt 0" in reason
    wait_for(lambda: HealthSample.objects.filter(server__name="wrong-answers", kind="synthetic").count() >= 3)


def test_a_latency_ramp_is_called_degrading_and_predicted_before_it_crosses(monitor, live_fleet, monkeypatch):
    # A trend needs 10 minutes of data; this ramp shows itself in seconds (checked every 0.25 s).
    monkeypatch.setattr(trends, "MIN_WINDOW_SECONDS", 5.0)
    server_create(
        name="ramp",
        transport="stdio",
        command=sys.executable,
        args=[str(TEST_SERVERS / "well_behaved.py"), "stdio"],
        env={"RAMP_MS_PER_SECOND": "20"},
        metadata={"health": {"interval_seconds": 0.25, "latency_target_ms": 2_000}},
    )
    live_fleet.request_reconcile()
    server = Server.objects.get(name="ramp")

    def degrading() -> bool:
        (figures,) = fleet_health([server])
        return bool(figures["trend"] and figures["trend"]["direction"] == "degrading" and figures["prediction"])

    wait_for(degrading, timeout=40, what="a degrading trend with a prediction")
    (figures,) = fleet_health([server])
    slowest = max(HealthSample.objects.filter(server=server, kind="probe").values_list("latency_ms", flat=True))
    assert slowest < 2_000  # predicted before the threshold is crossed
    prediction = figures["prediction"]
    assert prediction["metric"] == "latency_ms" and prediction["threshold"] == 2_000
    assert (
        prediction["earliest"] <= prediction["at"]
        and timezone.datetime.fromisoformat(prediction["at"]) > timezone.now()
    )
    assert figures["trend"]["slope_ms_per_hour"] > 0 and figures["trend"]["confidence"] > 0.95


def test_a_maintenance_window_suppresses_the_outage_and_is_left_out_of_availability(monitor, live_fleet):
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        name="upgrade", server_type="exchange", starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1)
    )
    server = exchange("maintained", "--outage", "0:120")
    Server.objects.filter(pk=server.pk).update(server_type="exchange")
    live_fleet.request_reconcile()
    wait_for(lambda: status_of("maintained") == ServerStatus.MAINTENANCE, what="in maintenance")
    wait_for(lambda: HealthSample.objects.filter(server=server, kind="probe").count() >= 4, what="checks kept")
    assert not HealthSample.objects.filter(server=server, kind="probe", in_maintenance=False).exists()
    assert not StatusChange.objects.filter(server=server, to_status=ServerStatus.OFFLINE).exists()
    (figures,) = fleet_health([server])
    assert figures["availability"]["24h"] is None  # nothing counted: every check was in the window
    window.delete()
    wait_for(lambda: status_of("maintained") == ServerStatus.OFFLINE, what="down once the window closed")


def test_real_calls_that_fail_count_as_passive_signals(monitor, live_fleet):
    """The probe answers (ping), but people's tool calls fail: the server is called partly failing, degraded."""
    from fleet import calls as fleet_calls

    exchange("fails-calls", "--error-rate", "1")
    live_fleet.request_reconcile()
    wait_for(lambda: status_of("fails-calls") == ServerStatus.ONLINE, what="online on its probes")
    server = Server.objects.get(name="fails-calls")
    for _ in range(6):
        answer = fleet_calls.call_tool_sync(server, "get_quote", {"symbol": "BTC-USD"}, caller="someone")
        assert answer.result.is_error
    wait_for(lambda: status_of("fails-calls") == ServerStatus.DEGRADED, what="degraded by the failing calls")
    assert Server.objects.get(name="fails-calls").status_reason.startswith("partly failing")
    # The samples are written in batches, after the status has changed in memory.
    failed = HealthSample.objects.filter(server=server, kind="passive", ok=False)
    wait_for(lambda: failed.count() >= 6, what="the failed calls kept as passive samples")
