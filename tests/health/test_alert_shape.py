"""An alert as the API and the health.alerts events show it: exactly the declared fields (the OpenAPI schema), the
cause it fired with kept after it resolves and how it resolved, silences marked, removed servers kept by name,
notifications grouped by rule and server type, and no prediction from too little data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from health.alerting import evaluate
from health.alerts_api import AlertSerializer
from health.models import (
    Alert,
    AlertRule,
    AlertState,
    HealthSample,
    NotificationChannel,
    NotificationDelivery,
    RuleKind,
    SampleKind,
    Silence,
)
from registry.models import Server
from registry.services import server_create

pytestmark = pytest.mark.django_db


def offline(name: str, server_type: str = "exchange") -> Server:
    server = server_create(name=name, transport="http", url="http://127.0.0.1:9/mcp", server_type=server_type)
    Server.objects.filter(pk=server.pk).update(status="offline", status_reason="3 checks in a row failed")
    return server


def down_rule(**options) -> AlertRule:
    return AlertRule.objects.create(
        name="server down", kind="down", severity="critical", group_wait_seconds=0, **options
    )


def test_alerts_answer_exactly_the_declared_fields(viewer_api):
    server = server_create(name="quotes", transport="http", url="http://127.0.0.1:9/mcp")
    rule = AlertRule.objects.create(name="server down", kind=RuleKind.DOWN)
    alert = Alert.objects.create(
        rule=rule, server=server, state=AlertState.FIRING, summary="quotes is down", started_at=timezone.now()
    )
    listed = viewer_api.get("/api/alerts/").json()["results"]
    assert [set(row) for row in listed] == [set(AlertSerializer().fields)]
    assert listed[0]["server"] == "quotes" and listed[0]["silenced"] is False and listed[0]["silenced_by"] is None
    assert set(viewer_api.get(f"/api/alerts/{alert.pk}/").json()) == set(AlertSerializer().fields)
    schema = viewer_api.get("/api/schema/?format=json").json()
    assert set(schema["components"]["schemas"]["Alert"]["properties"]) == set(AlertSerializer().fields)


def test_a_resolved_alert_keeps_its_cause_and_says_how_it_resolved(viewer_api):
    server = offline("delta")
    down_rule()
    (fired,) = evaluate()
    assert fired["cause"] == "delta is offline: 3 checks in a row failed" and fired["resolution"] == ""
    Server.objects.filter(pk=server.pk).update(status="online", status_reason="healthy: checks pass")
    (resolved,) = evaluate()
    assert resolved["what"] == "resolved"
    assert resolved["cause"] == "delta is offline: 3 checks in a row failed"
    assert resolved["resolution"] == "recovered: now online (healthy: checks pass)"
    (listed,) = viewer_api.get("/api/alerts/?state=resolved").json()["results"]
    assert listed["cause"] == resolved["cause"] and listed["resolution"] == resolved["resolution"]


def test_alerts_resolve_saying_the_rule_was_disabled_or_the_server_removed(viewer_api):
    offline("kept")
    removed = offline("removed")
    rule = down_rule()
    AlertRule.objects.create(name="also down", kind="down", group_wait_seconds=0, servers=["kept"])
    assert len(evaluate()) == 3
    removed.delete()
    AlertRule.objects.filter(name="also down").update(enabled=False)
    changes = {(c["rule"], c["server"]): c["resolution"] for c in evaluate()}
    assert changes == {("server down", "removed"): "server removed", ("also down", "kept"): "rule disabled"}
    # The removed server's alert stays in the history, by name.
    listed = viewer_api.get("/api/alerts/?state=resolved").json()["results"]
    assert {(a["server"], a["resolution"]) for a in listed} == {
        ("removed", "server removed"),
        ("kept", "rule disabled"),
    }
    assert Alert.objects.get(server_name="kept", rule=rule).state == "firing"


def test_a_silenced_alert_is_marked_and_sends_nothing(settings, admin_api, viewer_api):
    settings.HEALTH_ALERT_CALLABLES = {"collect": "tests.health.test_alerts.collect"}
    NotificationChannel.objects.create(name="py", kind="callable", callable_name="collect")
    offline("delta")
    offline("gamma")
    rule = down_rule()
    made = admin_api.post(
        "/api/alerts/silences/",
        {
            "rule": "server down",
            "server": "delta",
            "starts_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
            "ends_at": (timezone.now() + timedelta(hours=1)).isoformat(),
            "comment": "known flapper",
        },
        format="json",
    )
    assert made.status_code == 201, made.json()
    changes = {c["server"]: c for c in evaluate()}  # the health.alerts events
    assert changes["delta"]["silenced"] is True and changes["gamma"]["silenced"] is False
    assert changes["delta"]["silenced_by"] == {
        "id": made.json()["id"],
        "ends_at": Silence.objects.get().ends_at.isoformat(),
        "comment": "known flapper",
        "created_by": "alice-admin",
    }
    (delivery,) = NotificationDelivery.objects.all()
    assert [a["server"] for a in delivery.payload["alerts"]] == ["gamma"]  # the silenced one sends nothing
    assert Alert.objects.get(server_name="delta").notified_state == ""
    listed = {a["server"]: a for a in viewer_api.get("/api/alerts/").json()["results"]}
    assert listed["delta"]["silenced"] and listed["delta"]["silenced_by"]["comment"] == "known flapper"
    assert not listed["gamma"]["silenced"] and listed["gamma"]["rule_id"] == rule.pk
    # The silences are read once per list, not once per alert.
    with CaptureQueriesContext(connection) as queries:
        viewer_api.get("/api/alerts/")
    assert sum("health_silence" in q["sql"] for q in queries.captured_queries) == 1


def test_notifications_group_by_rule_and_server_type(settings):
    settings.HEALTH_ALERT_CALLABLES = {"collect": "tests.health.test_alerts.collect"}
    NotificationChannel.objects.create(name="py", kind="callable", callable_name="collect")
    offline("alpha")
    offline("beta")
    offline("clock", server_type="utility")
    down_rule()
    evaluate()
    groups = {
        tuple(d.payload["group_by"].values()): sorted(a["server"] for a in d.payload["alerts"])
        for d in NotificationDelivery.objects.all()
    }
    assert groups == {("server down", "exchange"): ["alpha", "beta"], ("server down", "utility"): ["clock"]}


def _probes(server: Server, minutes: float, now, start_ms: float = 5.0, rise_ms_per_minute: float = 20.0) -> None:
    count = int(minutes * 30)  # a check every 2 s
    HealthSample.objects.bulk_create(
        HealthSample(
            server=server,
            at=now - timedelta(seconds=2 * (count - i)),
            kind=SampleKind.PROBE,
            ok=True,
            latency_ms=start_ms + rise_ms_per_minute * (i * 2 / 60) + (i % 3),
        )
        for i in range(count)
    )


def test_a_latency_prediction_needs_its_minimum_window_of_data():
    now = timezone.now()
    short = server_create(name="young", transport="http", url="http://127.0.0.1:9/mcp")
    long = server_create(name="rising", transport="http", url="http://127.0.0.1:9/mcp")
    flat = server_create(name="flat", transport="http", url="http://127.0.0.1:9/mcp")
    Server.objects.update(status="online")
    _probes(short, 2, now)  # steeply rising, but two minutes of it
    _probes(long, 15, now)
    _probes(flat, 15, now, rise_ms_per_minute=0)
    AlertRule.objects.create(name="heading", kind="predicted_breach", threshold=1_000, group_wait_seconds=0)
    changes = evaluate(now)
    assert [(c["what"], c["server"]) for c in changes] == [("firing", "rising")]
    assert "latency predicted to reach 1000 ms" in changes[0]["summary"]
