"""Who may manage alerting through the API, and what it refuses: operators write rules, silences and maintenance
windows (and end them); channels, which hold secrets, stay admins'; viewers read; outsiders nothing. Silences and
windows made here are the rows alerting and the monitor read. "Send a test" reaches a receiver on 127.0.0.1 signed,
is logged, and a failing receiver is one failed attempt, not a retry."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from health.alerting import active_silences, alert_json
from health.models import Alert, AlertRule, AlertState, MaintenanceWindow, NotificationChannel, NotificationDelivery
from health.monitor import load_configs
from registry.models import Server
from registry.services import server_create
from tests.health.test_alerts import Receiver

pytestmark = pytest.mark.django_db

SECRET = "test-send-secret"


@pytest.fixture
def servers() -> list[Server]:
    return [
        server_create(name=name, transport="http", url="http://127.0.0.1:9/mcp", server_type="exchange")
        for name in ("alpha", "beta")
    ]


def _future(hours: float) -> str:
    return (timezone.now() + timedelta(hours=hours)).isoformat()


def _writes(client: APIClient, tag: str) -> dict[str, int]:
    """Every alerting write once (create, change, end, delete); the status code of each."""
    codes: dict[str, int] = {}
    rule = client.post("/api/alerts/rules/", {"name": f"slow {tag}", "kind": "latency", "threshold": 250})
    codes["rule create"] = rule.status_code
    rule_id = rule.json()["id"] if rule.status_code == 201 else AlertRule.objects.get(name="seed").pk
    codes["rule edit"] = client.patch(f"/api/alerts/rules/{rule_id}/", {"severity": "critical"}).status_code
    silence = client.post(
        "/api/alerts/silences/", {"rule": "seed", "server": "alpha", "duration_seconds": 3600, "comment": tag}
    )
    codes["silence create"] = silence.status_code
    silence_id = silence.json()["id"] if silence.status_code == 201 else _seed_silence().pk
    codes["silence end"] = client.post(f"/api/alerts/silences/{silence_id}/end/").status_code
    codes["silence delete"] = client.delete(f"/api/alerts/silences/{silence_id}/").status_code
    window = client.post(
        "/api/health/maintenance/",
        {"name": f"upgrade {tag}", "servers": ["beta"], "starts_at": timezone.now().isoformat(), "ends_at": _future(1)},
    )
    codes["window create"] = window.status_code
    window_id = window.json()["id"] if window.status_code == 201 else _seed_window().pk
    codes["window end"] = client.post(f"/api/health/maintenance/{window_id}/end/").status_code
    codes["window delete"] = client.delete(f"/api/health/maintenance/{window_id}/").status_code
    channel = client.post(
        "/api/alerts/channels/",
        {"name": f"hook {tag}", "kind": "webhook", "url": "http://127.0.0.1:9/h", "secret": "x"},
    )
    codes["channel create"] = channel.status_code
    codes["rule delete"] = client.delete(f"/api/alerts/rules/{rule_id}/").status_code
    return codes


def _seed_silence():
    from health.models import Silence

    return Silence.objects.create(
        rule=AlertRule.objects.get(name="seed"),
        starts_at=timezone.now() - timedelta(minutes=1),
        ends_at=timezone.now() + timedelta(hours=1),
    )


def _seed_window() -> MaintenanceWindow:
    return MaintenanceWindow.objects.create(
        name="seeded", server_type="exchange", starts_at=timezone.now(), ends_at=timezone.now() + timedelta(hours=1)
    )


def _client(user) -> APIClient:
    client = APIClient()
    client.default_format = "json"
    if user is not None:
        client.force_authenticate(user)
    return client


def test_operators_manage_rules_silences_and_windows_admins_channels_viewers_read(
    servers, admin_user, operator_user, viewer_user, outsider_user
):
    AlertRule.objects.create(name="seed", kind="down")
    every = {
        "rule create",
        "rule edit",
        "silence create",
        "silence end",
        "silence delete",
        "window create",
        "window end",
        "window delete",
        "channel create",
        "rule delete",
    }
    admin = _writes(_client(admin_user), "admin")
    assert admin == {
        **dict.fromkeys(every, 200),
        "rule create": 201,
        "silence create": 201,
        "window create": 201,
        "channel create": 201,
        "silence delete": 204,
        "window delete": 204,
        "rule delete": 204,
    }
    operator = _writes(_client(operator_user), "operator")
    assert operator == {**admin, "channel create": 403}
    for user in (viewer_user, outsider_user, None):
        codes = set(_writes(_client(user), "nobody").values())
        assert codes == {403} if user else codes <= {401, 403}, (user, codes)
    # Reads: viewers see rules, silences and windows, not channels or deliveries (they hold secrets and bodies).
    reads = ["/api/alerts/rules/", "/api/alerts/silences/", "/api/health/maintenance/"]
    secret = ["/api/alerts/channels/", "/api/alerts/deliveries/"]
    viewer, operator_client, outsider = _client(viewer_user), _client(operator_user), _client(outsider_user)
    assert [viewer.get(url).status_code for url in reads + secret] == [200, 200, 200, 403, 403]
    assert [operator_client.get(url).status_code for url in secret] == [403, 403]
    assert [outsider.get(url).status_code for url in reads] == [403, 403, 403]
    channel = NotificationChannel.objects.get(name="hook admin")
    assert viewer.post(f"/api/alerts/channels/{channel.pk}/test/").status_code == 403
    assert operator_client.post(f"/api/alerts/channels/{channel.pk}/test/").status_code == 403
    assert not NotificationDelivery.objects.exists()


def test_bad_input_is_named_at_its_field(servers, operator_user):
    client = _client(operator_user)
    AlertRule.objects.create(name="seed", kind="down")
    cases = [
        ("/api/alerts/rules/", {"name": "a", "kind": "latency", "threshold": 0}, "threshold"),
        ("/api/alerts/rules/", {"name": "b", "kind": "availability", "threshold": 99}, "threshold"),
        ("/api/alerts/rules/", {"name": "c", "kind": "error_rate", "threshold": -0.1}, "threshold"),
        ("/api/alerts/rules/", {"name": "d", "kind": "down", "servers": ["alpha", "nobody"]}, "servers"),
        ("/api/alerts/rules/", {"name": "e", "kind": "down", "servers": "alpha"}, "servers"),
        ("/api/alerts/rules/", {"name": "f", "kind": "sideways"}, "kind"),
        ("/api/alerts/rules/", {"name": "g", "kind": "down", "window_seconds": -1}, "window_seconds"),
        ("/api/alerts/silences/", {"rule": "seed"}, "ends_at"),
        (
            "/api/alerts/silences/",
            {"rule": "seed", "duration_seconds": 3600, "ends_at": _future(1)},
            "duration_seconds",
        ),
        ("/api/alerts/silences/", {"rule": "seed", "duration_seconds": 5}, "duration_seconds"),
        ("/api/alerts/silences/", {"rule": "nope", "duration_seconds": 3600}, "rule"),
        ("/api/alerts/silences/", {"server": "nobody", "duration_seconds": 3600}, "server"),
        ("/api/alerts/silences/", {"rule": "seed", "starts_at": _future(2), "ends_at": _future(1)}, "ends_at"),
        ("/api/health/maintenance/", {"name": "w", "starts_at": _future(0), "ends_at": _future(1)}, "servers"),
        (
            "/api/health/maintenance/",
            {"name": "w", "servers": ["nobody"], "starts_at": _future(0), "ends_at": _future(1)},
            "servers",
        ),
        (
            "/api/health/maintenance/",
            {"name": "w", "tag": "db", "starts_at": _future(0), "ends_at": _future(1), "recurrence": "hourly"},
            "recurrence",
        ),
    ]
    for url, body, field in cases:
        response = client.post(url, body)
        assert response.status_code == 400 and field in response.json(), (body, response.json())
    # A threshold in the kind's unit is taken: 250 ms for latency, 0.995 for availability.
    assert client.post("/api/alerts/rules/", {"name": "ms", "kind": "latency", "threshold": 250}).status_code == 201
    made = client.post(
        "/api/alerts/rules/",
        {"name": "avail", "kind": "availability", "threshold": 0.995, "servers": ["alpha"], "server_type": "exchange"},
    )
    assert made.status_code == 201 and made.json()["servers"] == ["alpha"]
    # Only what is in force can be ended; an upcoming silence or window is deleted instead.
    upcoming = client.post("/api/alerts/silences/", {"rule": "seed", "starts_at": _future(1), "ends_at": _future(2)})
    refused = client.post(f"/api/alerts/silences/{upcoming.json()['id']}/end/")
    assert refused.status_code == 409 and "not started" in refused.json()["detail"]
    window = client.post(
        "/api/health/maintenance/", {"name": "later", "tag": "db", "starts_at": _future(1), "ends_at": _future(2)}
    )
    refused = client.post(f"/api/health/maintenance/{window.json()['id']}/end/")
    assert refused.status_code == 409 and "not started" in refused.json()["detail"]


def test_silences_and_windows_made_here_are_the_ones_alerting_and_health_respect(servers, operator_user):
    client = _client(operator_user)
    alpha, beta = servers
    rule = AlertRule.objects.create(name="server down", kind="down", severity="critical")
    alert = Alert.objects.create(
        rule=rule,
        server=alpha,
        server_name="alpha",
        state=AlertState.FIRING,
        summary="alpha is offline",
        started_at=timezone.now(),
        fired_at=timezone.now(),
    )
    made = client.post(
        "/api/alerts/silences/",
        {"rule": "server down", "server": "alpha", "duration_seconds": 4 * 3600, "comment": "upgrading"},
    ).json()
    assert made["state"] == "active" and made["created_by"] == operator_user.username
    length = timezone.datetime.fromisoformat(made["ends_at"]) - timezone.datetime.fromisoformat(made["starts_at"])
    assert length == timedelta(hours=4)
    shown = alert_json(alert, active_silences(timezone.now()))
    assert shown["silenced"] is True and shown["silenced_by"]["comment"] == "upgrading"
    ended = client.post(f"/api/alerts/silences/{made['id']}/end/").json()
    assert ended["state"] == "ended"
    assert alert_json(alert, active_silences(timezone.now()))["silenced"] is False
    assert client.post(f"/api/alerts/silences/{made['id']}/end/").status_code == 409  # already ended

    window = client.post(
        "/api/health/maintenance/",
        {
            "name": "upgrade beta",
            "servers": ["beta"],
            "starts_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
            "ends_at": _future(1),
            "recurrence": "daily",
        },
    ).json()
    assert window["open_now"] is True
    assert load_configs()[2] == {"beta": "upgrade beta"}  # the monitor's open windows: beta in maintenance
    ended = client.post(f"/api/health/maintenance/{window['id']}/end/").json()
    assert ended["open_now"] is False and ended["recurrence"] == "none"  # a repeating window stops repeating
    assert load_configs()[2] == {}


def test_send_a_test_reaches_the_receiver_signed_and_is_logged(admin_user):
    client = _client(admin_user)
    good, failing = Receiver(), Receiver(codes=[500])
    try:
        channel = client.post(
            "/api/alerts/channels/", {"name": "ops", "kind": "webhook", "url": good.url, "secret": SECRET}
        ).json()
        answer = client.post(f"/api/alerts/channels/{channel['id']}/test/")
        assert answer.status_code == 200
        outcome = answer.json()
        assert outcome["state"] == "delivered" and outcome["last_status_code"] == 200 and outcome["attempts"] == 1
        assert SECRET not in answer.content.decode()
        ((headers, body),) = good.received
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Orchestrator-Signature"], expected)
        assert good.payloads()[0]["status"] == "test" and good.payloads()[0]["requested_by"] == admin_user.username
        logged = client.get("/api/alerts/deliveries/").json()["results"]
        assert [(d["channel"], d["state"], d["payload"]["status"]) for d in logged] == [("ops", "delivered", "test")]

        client.patch(f"/api/alerts/channels/{channel['id']}/", {"url": failing.url})
        failed = client.post(f"/api/alerts/channels/{channel['id']}/test/").json()
        # One attempt, final: a test is not retried behind the operator's back.
        assert failed["state"] == "failed" and failed["last_status_code"] == 500 and failed["attempts"] == 1
        assert failed["last_error"] == "HTTP 500" and len(failing.received) == 1
        assert NotificationDelivery.objects.get(pk=failed["id"]).state == "failed"

        good.close()
        good.server.server_close()  # nothing listens on its port now
        client.patch(f"/api/alerts/channels/{channel['id']}/", {"url": good.url})
        refused = client.post(f"/api/alerts/channels/{channel['id']}/test/").json()
        assert refused["state"] == "failed" and refused["last_status_code"] is None and refused["last_error"]
        assert SECRET not in refused["last_error"]
        assert client.post("/api/alerts/channels/999999/test/").status_code == 404
    finally:
        for receiver in (good, failing):
            receiver.close()
            receiver.server.server_close()


def test_a_silence_ending_past_the_year_9999_is_named_not_a_server_error(operator_user):
    AlertRule.objects.create(name="seed", kind="down")
    response = _client(operator_user).post(
        "/api/alerts/silences/",
        {"rule": "seed", "starts_at": "9999-12-31T00:00:00Z", "duration_seconds": 7 * 24 * 3600},
    )
    assert response.status_code == 400 and "duration_seconds" in response.json()
