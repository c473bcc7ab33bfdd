"""Rollups, retention and the health API over stored samples."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from health.models import HealthRollup, HealthSample, Resolution
from health.rollups import roll_up
from health.selectors import fleet_health, forget_settled_sums
from registry.services import server_create, server_status_transition

pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    return server_create(name="exchange-alpha", transport="http", url="http://127.0.0.1:9/mcp")


def sample(server, at, ok=True, latency=10.0, kind="probe", maintenance=False, tool=""):
    return HealthSample(
        server=server,
        at=at,
        kind=kind,
        ok=ok,
        latency_ms=latency if ok else None,
        in_maintenance=maintenance,
        tool=tool,
    )


def test_rollups_keep_exact_counts_and_retention_bounds_every_level(server, settings):
    now = timezone.now().replace(second=30, microsecond=0)
    start = now - timedelta(hours=3)
    rows = []
    for i in range(3 * 60 * 6):  # three hours, a check every 10 s
        at = start + timedelta(seconds=10 * i)
        rows.append(sample(server, at, ok=i % 10 != 0, latency=10 + i % 7, maintenance=i % 60 == 5))
    HealthSample.objects.bulk_create(rows)
    written = roll_up(now)
    assert written["minutes"] >= 179 and written["hours"] >= 2
    minutes = HealthRollup.objects.filter(resolution=Resolution.MINUTE)
    counted = sum(m.checks for m in minutes) + sum(m.in_maintenance for m in minutes)
    raw_before = HealthSample.objects.filter(at__lt=now.replace(second=0)).count()
    assert counted == raw_before
    hours = HealthRollup.objects.filter(resolution=Resolution.HOUR)
    assert sum(h.checks for h in hours) == sum(m.checks for m in minutes if m.start < now.replace(minute=0, second=0))
    (figures,) = fleet_health([server], now=now)
    expected = sum(1 for r in rows if r.ok and not r.in_maintenance) / sum(1 for r in rows if not r.in_maintenance)
    assert figures["availability"]["24h"] == pytest.approx(expected, abs=1e-6)
    assert figures["availability"]["30d"] == pytest.approx(expected, abs=1e-6)
    assert 10 <= figures["latency_ms"]["p50"] <= 16 and figures["latency_ms"]["p99"] == 16

    settings.HEALTH_RAW_RETENTION_SECONDS = 3600
    settings.HEALTH_MINUTE_RETENTION_SECONDS = 7200
    pruned = roll_up(now)
    assert pruned["pruned_samples"] > 0 and pruned["pruned_minutes"] > 0
    assert not HealthSample.objects.filter(at__lt=now - timedelta(hours=1)).exists()
    assert HealthRollup.objects.filter(resolution=Resolution.HOUR).count() >= 2  # hours stay for 90 days
    (after,) = fleet_health([server], now=now)
    assert after["availability"]["30d"] == pytest.approx(expected, abs=0.02)


def test_the_health_api_per_persona_with_field_errors(server, viewer_user, operator_user, outsider_user):
    now = timezone.now()
    HealthSample.objects.bulk_create([sample(server, now - timedelta(seconds=5 * i)) for i in range(20)])
    HealthSample.objects.create(server=server, at=now, kind="passive", ok=False, tool="get_quote", error="boom")
    client = APIClient()
    client.force_authenticate(outsider_user)
    assert client.get("/api/health/").status_code == 403
    client.force_authenticate(viewer_user)
    (row,) = client.get("/api/health/").json()["results"]
    assert set(row) >= {"server", "status", "availability", "latency_ms", "success_rate", "trend", "prediction"}
    assert row["availability"]["24h"] == 1.0 and set(row["availability"]) == {"24h", "7d", "30d"}
    server_status_transition(server_id=server.pk, status="offline", reason="gone", source="health")
    detail = client.get("/api/health/exchange-alpha/").json()
    (change,) = detail["status_history"]
    assert change | {"at": None} == {
        "at": None,
        "from": "unknown",
        "to": "offline",
        "reason": "gone",
        "source": "health",
    }
    assert detail["tools"] == [
        {"tool": "get_quote", "calls": 1, "success_rate": 0.0, "latency_p50_ms": None, "latency_p95_ms": None}
    ]
    samples = client.get("/api/health/exchange-alpha/samples/?kind=probe&limit=5").json()
    assert len(samples["results"]) == 5 and samples["results"][0]["kind"] == "probe"
    for query, field in [("?since=yesterday", "since"), ("?limit=0", "limit"), ("?kind=guess", "kind")]:
        response = client.get(f"/api/health/exchange-alpha/samples/{query}")
        assert response.status_code == 400 and field in response.json(), query
    assert client.get("/api/health/nobody/samples/").status_code == 404
    assert client.post("/api/health/exchange-alpha/check/").status_code == 403  # viewers do not check
    client.force_authenticate(operator_user)
    assert client.post("/api/health/exchange-alpha/check/").status_code == 503  # no monitor runs in this test
    window = {
        "name": "upgrade",
        "servers": ["exchange-alpha"],
        "starts_at": now.isoformat(),
        "ends_at": now.isoformat(),
    }
    response = client.post("/api/health/maintenance/", window, format="json")
    assert response.status_code == 400 and "ends_at" in response.json()
    window["ends_at"] = (now + timedelta(hours=1)).isoformat()
    created = client.post("/api/health/maintenance/", window, format="json").json()
    assert created["open_now"] is True and created["created_by"] == operator_user.username


def test_settled_hours_are_summed_once_and_the_latest_hours_always_fresh(server):
    """The 7- and 30-day figures keep the sums of hours that can no longer change; the last hour, the minutes and
    the raw samples after it are read every time, so a new check shows at once."""
    now = timezone.now().replace(second=30, microsecond=0)
    start = now - timedelta(hours=5)
    HealthSample.objects.bulk_create([sample(server, start + timedelta(seconds=10 * i)) for i in range(5 * 360)])
    roll_up(now)
    (first,) = fleet_health([server], now=now)
    assert first["availability"]["24h"] == 1.0
    with CaptureQueriesContext(connection) as again:
        (second,) = fleet_health([server], now=now)
    assert second["availability"] == first["availability"]
    with CaptureQueriesContext(connection) as cold:
        forget_settled_sums()
        fleet_health([server], now=now)
    assert len(again) < len(cold)  # the settled hours came from memory
    HealthSample.objects.create(server=server, at=now - timedelta(seconds=1), kind="probe", ok=False)
    (after,) = fleet_health([server], now=now)
    assert after["availability"]["24h"] < 1.0  # a failed check just now counts at once
