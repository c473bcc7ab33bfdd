"""Alerts end to end over the real protocol: rules fire and resolve, notifications reach a webhook receiver on
127.0.0.1 signed, failing receivers are retried and logged, flapping does not spam, a restart repeats nothing,
maintenance suppresses, a tool change raises a drift alert."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from rest_framework.test import APIClient

from fleet import calls as fleet_calls
from fleet.application import hub_from_settings
from health.models import Alert, AlertRule, MaintenanceWindow, NotificationChannel, NotificationDelivery
from mcp_client import FleetRuntime
from registry.models import Server
from registry.services import server_create
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cret-for-signing"
TEST_SERVERS = Path(__file__).parents[1] / "mcp_servers"


class Receiver:
    """A webhook receiver on 127.0.0.1 that records what it gets and answers the codes it is told to."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.codes = list(codes or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def monitor(live_fleet):
    return live_fleet.monitor


def exchange(name: str, *extra: str, health: dict | None = None) -> Server:
    return server_create(
        name=name,
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha", *extra],
        cwd=str(django_settings.BASE_DIR),
        metadata={"health": {"interval_seconds": 0.5, "retries": 1, "recover_after": 2, **(health or {})}},
    )


def down_rule(**options) -> AlertRule:
    return AlertRule.objects.create(
        name=options.pop("name", "server down"),
        kind="down",
        severity="critical",
        group_wait_seconds=options.pop("group_wait_seconds", 0.2),
        group_interval_seconds=options.pop("group_interval_seconds", 0.5),
        **options,
    )


def webhook(url: str) -> NotificationChannel:
    return NotificationChannel.objects.create(name="ops hook", kind="webhook", url=url, secret=SECRET)


def verified(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Orchestrator-Signature"], expected)


def test_an_outage_fires_once_and_resolves_once_with_signed_notifications(monitor, live_fleet, receiver):
    down_rule()
    webhook(receiver.url)
    exchange("flaky", "--outage", "3:7")
    live_fleet.request_reconcile()
    wait_for(lambda: len(receiver.received) >= 2, timeout=40, what="a firing and a resolved notification")
    for _ in range(3):  # more rounds, now that everything was sent: nothing new may go out
        monitor.runtime.run(monitor.alert_round())
    assert [p["status"] for p in receiver.payloads()] == ["firing", "resolved"]
    assert all(verified(headers, body) for headers, body in receiver.received)
    firing, resolved = receiver.payloads()
    assert firing["group"] == "server down" and firing["severity"] == "critical"
    assert [(a["server"], a["state"]) for a in firing["alerts"]] == [("flaky", "firing")]
    assert [(a["server"], a["state"]) for a in resolved["alerts"]] == [("flaky", "resolved")]
    assert "offline" in firing["alerts"][0]["summary"]
    alert = Alert.objects.get()
    assert alert.state == "resolved" and alert.notified_state == "resolved"
    assert {d.state for d in NotificationDelivery.objects.all()} == {"delivered"}


def test_a_failing_receiver_is_retried_and_every_attempt_logged(monitor, live_fleet, settings):
    receiver = Receiver(codes=[500, 503])
    try:
        down_rule()
        webhook(receiver.url)
        exchange("broken", "--outage", "2:60")
        live_fleet.request_reconcile()
        wait_for(lambda: NotificationDelivery.objects.filter(state="delivered").exists(), timeout=40, what="delivered")
        delivery = NotificationDelivery.objects.get(state="delivered")
        assert [entry["status_code"] for entry in delivery.log] == [500, 503, 200][: len(delivery.log)]
        assert delivery.attempts == 3 and len(receiver.received) == 3
        assert all(verified(headers, body) for headers, body in receiver.received)
    finally:
        receiver.close()


def test_a_flapping_server_is_one_open_alert_and_does_not_spam(monitor, live_fleet, receiver):
    down_rule(group_interval_seconds=3600)
    webhook(receiver.url)
    exchange("flapping", "--outage", "1.5:3", "--outage-period", "3", health={"retries": 0, "recover_after": 1})
    live_fleet.request_reconcile()

    def flapping_alert() -> Alert | None:
        return Alert.objects.filter(state="firing", summary__contains="is flapping: ").first()

    wait_for(flapping_alert, timeout=60, what="a flapping alert")
    opened, checks = Alert.objects.count(), monitor.checks_done
    wait_for(lambda: monitor.checks_done >= checks + 24, timeout=60, what="four more outage cycles of checks")
    monitor.runtime.run(monitor.alert_round())
    assert Alert.objects.count() == opened  # no alert per cycle while it flaps (before: one per outage)
    assert Alert.objects.filter(state="firing").count() == 1 and flapping_alert() is not None
    assert [p["status"] for p in receiver.payloads()] == ["firing"]  # one notification per group interval


def test_a_restart_sends_nothing_already_sent(start_fleet, receiver, settings):
    down_rule()
    webhook(receiver.url)
    exchange("long-outage", "--outage", "2:120")
    # The sessions outlive the restart below (a restarted exchange would begin its outage anew).
    runtime = FleetRuntime(hub_from_settings()).start()
    try:
        first = start_fleet(runtime=runtime)
        first.request_reconcile()
        wait_for(lambda: len(receiver.received) == 1, timeout=40, what="the firing notification")
        # The orchestrator restarts: a new application (supervisor, monitor), with only the database carried over.
        first.stop()
        again = start_fleet(runtime=runtime)
        wait_for(lambda: again.monitor.checks_done >= 6, what="the new monitor at work")
        for _ in range(3):
            runtime.run(again.monitor.alert_round())
        again.stop()
    finally:
        runtime.shutdown()
    assert len(receiver.received) == 1
    assert Alert.objects.filter(state="firing").count() == 1 and Alert.objects.count() == 1


def test_a_maintenance_window_suppresses_alerts(monitor, live_fleet, receiver):
    down_rule()
    webhook(receiver.url)
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        name="planned", starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1)
    )
    server = exchange("planned", "--outage", "1:120")
    window.servers.add(server)
    live_fleet.request_reconcile()
    wait_for(lambda: Server.objects.get(name="planned").status == "maintenance", what="in maintenance")
    wait_for(lambda: monitor.checks_done >= 6, what="checks during the window")
    monitor.runtime.run(monitor.alert_round())
    assert not Alert.objects.exists() and receiver.received == []


def test_a_tool_that_appears_raises_a_drift_alert(monitor, live_fleet, receiver):
    AlertRule.objects.create(name="drift", kind="capability_drift", severity="info", group_wait_seconds=0.2)
    webhook(receiver.url)
    server_create(
        name="changing",
        transport="stdio",
        command=sys.executable,
        args=[str(TEST_SERVERS / "well_behaved.py"), "stdio"],
    )
    live_fleet.request_reconcile()
    wait_for(lambda: Server.objects.get(name="changing").status == "online", what="online")
    live_fleet.runtime.run(fleet_calls.call_tool("changing", "grow_tools"))
    wait_for(lambda: Alert.objects.filter(rule__name="drift").exists(), timeout=30, what="a drift alert")
    alert = Alert.objects.get(rule__name="drift")
    assert "tool appeared: grown" in alert.summary
    wait_for(lambda: receiver.received, what="the drift notification")
    assert receiver.payloads()[0]["alerts"][0]["kind"] == "capability_drift"


def test_alerts_api_lists_by_state_and_operators_acknowledge(
    monitor, live_fleet, viewer_user, operator_user, admin_user
):
    down_rule()
    exchange("acked", "--outage", "1:120")
    live_fleet.request_reconcile()
    wait_for(lambda: Alert.objects.filter(state="firing").exists(), timeout=40, what="firing")
    client = APIClient()
    client.force_authenticate(viewer_user)
    (alert,) = client.get("/api/alerts/?state=firing").json()["results"]
    assert alert["server"] == "acked" and alert["severity"] == "critical"
    assert client.get("/api/alerts/?state=resolved").json()["results"] == []
    assert client.get("/api/alerts/?state=sideways").status_code == 400
    assert client.post(f"/api/alerts/{alert['id']}/acknowledge/").status_code == 403
    assert client.get("/api/alerts/channels/").status_code == 403
    client.force_authenticate(operator_user)
    acked = client.post(f"/api/alerts/{alert['id']}/acknowledge/").json()
    assert acked["acknowledged_by"] == operator_user.username
    # Operators manage rules (tests/health/test_alerting_api_roles.py); channels hold secrets and stay admins'.
    assert client.post("/api/alerts/channels/", {"name": "x", "kind": "callable"}, format="json").status_code == 403
    client.force_authenticate(admin_user)
    bad = client.post(
        "/api/alerts/channels/",
        {"name": "out", "kind": "webhook", "url": "http://169.254.169.254/", "secret": "x"},
        format="json",
    )
    assert bad.status_code == 400 and "url" in bad.json()
    made = client.post(
        "/api/alerts/channels/",
        {"name": "in", "kind": "webhook", "url": "http://127.0.0.1:9/h", "secret": "shh"},
        format="json",
    ).json()
    assert "secret" not in made and made["has_secret"] is True


CALLED: list[dict] = []


def collect(payload: dict) -> None:
    """A Python callable named in HEALTH_ALERT_CALLABLES (see the test below)."""
    CALLED.append(payload)


def test_a_python_callable_channel_gets_the_notification(settings, admin_user):
    import asyncio

    from fleet.orm_worker import OrmWorker
    from health.alerting import evaluate
    from health.notify import deliver_due

    settings.HEALTH_ALERT_CALLABLES = {"collect": "tests.health.test_alerts.collect"}
    CALLED.clear()
    server = server_create(name="gone", transport="http", url="http://127.0.0.1:9/mcp")
    Server.objects.filter(pk=server.pk).update(status="offline", status_reason="not answering")
    down_rule(group_wait_seconds=0)
    client = APIClient()
    client.force_authenticate(admin_user)
    refused = client.post(
        "/api/alerts/channels/", {"name": "py", "kind": "callable", "callable_name": "other"}, format="json"
    )
    assert refused.status_code == 400 and "callable_name" in refused.json()
    assert (
        client.post(
            "/api/alerts/channels/", {"name": "py", "kind": "callable", "callable_name": "collect"}, format="json"
        ).status_code
        == 201
    )
    changes = evaluate()
    assert [(c["what"], c["server"]) for c in changes] == [("firing", "gone")]
    worker = OrmWorker(name="test-notify")
    try:
        assert asyncio.run(deliver_due(worker)) == 1
    finally:
        worker.shutdown()
    (payload,) = CALLED
    assert payload["status"] == "firing" and payload["alerts"][0]["server"] == "gone"
    assert NotificationDelivery.objects.get().state == "delivered"
    assert evaluate() == [] and NotificationDelivery.objects.count() == 1  # nothing twice
