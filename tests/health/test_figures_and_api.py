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
from health.selectors import fleet_health, forget_settled_sums, trend_inputs
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


def _series(server, now, *, minutes, kind="probe", tool="", latency=lambda seconds: 3.7, every=10):
    """Successful checks every `every` s over the last `minutes`, with latency(seconds since the first)."""
    count = int(minutes * 60 / every)
    return [
        sample(
            server,
            now - timedelta(seconds=every * (count - i)),
            latency=latency(every * i),
            kind=kind,
            tool=tool,
        )
        for i in range(count)
    ]


def test_the_latency_shown_is_what_decided_the_status_with_the_probe_beside_it(server, viewer_user):
    """gamma was "degraded: slow: the median check is over the 120 ms target" while the API gave it the probe's
    3.7 ms: the figure shown is now its check call's, labelled, and the probe's beside it, each with its window."""
    now = timezone.now()
    gamma = server_create(
        name="exchange-gamma",
        transport="http",
        url="http://127.0.0.1:9/mcp",
        metadata={"health": {"synthetic": {"tool": "get_quote"}, "latency_target_ms": 120}},
    )
    rows = _series(gamma, now, minutes=20, latency=lambda s: 3.7)
    rows += _series(gamma, now, minutes=20, kind="synthetic", tool="get_quote", latency=lambda s: 150 + s % 7)
    rows.append(sample(gamma, now - timedelta(seconds=3), kind="synthetic", tool="get_quote", ok=False))
    rows.append(sample(gamma, now - timedelta(hours=2), kind="synthetic", tool="get_quote", latency=9_000))
    rows += _series(server, now, minutes=20, latency=lambda s: 10 + s % 3)
    HealthSample.objects.bulk_create(rows)
    client = APIClient()
    client.force_authenticate(viewer_user)
    by_name = {row["server"]: row for row in client.get("/api/health/").json()["results"]}

    checked = by_name["exchange-gamma"]
    assert checked["latency_source"] == "check" and checked["latency_target_ms"] == 120
    assert checked["latency_ms"] | {"p50": None, "p95": None, "p99": None} == {
        "p50": None,
        "p95": None,
        "p99": None,
        "approximate": False,
        "source": "check",
        "tool": "get_quote",
        "label": "check get_quote",
        "window_seconds": 1800.0,
        "samples": 120,  # the failed call and the one before the window are left out
    }
    assert 150 <= checked["latency_ms"]["p50"] <= checked["latency_ms"]["p99"] <= 156
    assert checked["probe_latency_ms"]["p50"] == 3.7 and checked["probe_latency_ms"]["label"] == "probe"
    assert checked["probe_latency_ms"]["window_seconds"] == 1800.0 and checked["probe_latency_ms"]["samples"] == 120
    assert checked["trend"]["source"] == "check"

    probed = by_name["exchange-alpha"]
    assert probed["latency_source"] == "probe" and probed["latency_ms"]["label"] == "probe"
    assert probed["latency_ms"] == probed["probe_latency_ms"] and 10 <= probed["latency_ms"]["p50"] <= 12

    detail = client.get("/api/health/exchange-gamma/").json()
    assert detail["latency_ms"] == checked["latency_ms"] and detail["probe_latency_ms"]["p50"] == 3.7
    # Alert rules read the same series: the check call's for gamma.
    series = trend_inputs([gamma.pk, server.pk], now)
    assert min(series[gamma.pk][1]) >= 150 and max(series[server.pk][1]) <= 12


def test_a_check_with_no_successful_call_yet_has_no_figure_not_the_probes(viewer_user):
    now = timezone.now()
    quiet = server_create(
        name="quiet",
        transport="http",
        url="http://127.0.0.1:9/mcp",
        metadata={"health": {"synthetic": {"tool": "get_quote"}}},
    )
    HealthSample.objects.bulk_create(_series(quiet, now, minutes=3))
    (figures,) = fleet_health([quiet], now=now)
    assert figures["latency_source"] == "check"
    assert figures["latency_ms"]["p50"] is None and figures["latency_ms"]["samples"] == 0
    assert figures["probe_latency_ms"]["p50"] == 3.7
    assert figures["trend"]["direction"] is None and figures["trend"]["reason"].startswith("too little data: 0 of")


def test_trends_and_predictions_say_why_and_not_from_too_little_data(viewer_user, settings):
    """Two minutes of a steep rise are no trend and no prediction ("too little data"); a flat server is stable with
    no prediction; a material, significant rise over 20 minutes is degrading and predicted with an 80 % band (at the
    right time in a time zone other than UTC too: SQLite hands back naive UTC datetimes)."""
    settings.TIME_ZONE = "Asia/Kolkata"
    now = timezone.now()
    servers = {
        name: server_create(name=name, transport="http", url="http://127.0.0.1:9/mcp", metadata=metadata)
        for name, metadata in [
            ("young", {}),
            ("flat", {}),
            ("rising", {}),
            ("over", {"health": {"latency_target_ms": 100}}),
            ("slow-check", {"health": {"synthetic": {"tool": "get_quote"}, "latency_target_ms": 2_000}}),
        ]
    }
    rise = lambda s: 5 + s / 3 + (s // 10) % 3  # noqa: E731 (20 ms a minute, with some noise)
    flat = lambda s: 3.4 + ((s // 10) % 5) / 10  # noqa: E731
    rows = _series(servers["young"], now, minutes=2, latency=lambda s: 5 + 2 * s)
    rows += _series(servers["flat"], now, minutes=20, latency=flat)
    rows += _series(servers["rising"], now, minutes=20, latency=rise)
    rows += _series(servers["over"], now, minutes=20, latency=rise)
    rows += _series(servers["slow-check"], now, minutes=20, latency=flat)
    rows += _series(servers["slow-check"], now, minutes=20, kind="synthetic", tool="get_quote", latency=rise)
    HealthSample.objects.bulk_create(rows)
    client = APIClient()
    client.force_authenticate(viewer_user)
    by_name = {row["server"]: row for row in client.get("/api/health/").json()["results"]}

    young = by_name["young"]
    assert young["trend"] | {"points": None} == {
        "direction": None,
        "slope_ms_per_hour": None,
        "confidence": None,
        "points": None,
        "reason": "too little data: 1 of 10 minutes, 12 checks",
        "significant": False,
        "material": False,
        "source": "probe",
        "window_seconds": 1800.0,
        "min_window_seconds": 600.0,
    }
    assert young["prediction"] is None and young["prediction_reason"] == "too little data: 1 of 10 minutes, 12 checks"

    assert by_name["flat"]["trend"]["direction"] == "stable" and not by_name["flat"]["trend"]["material"]
    assert by_name["flat"]["prediction"] is None
    assert by_name["flat"]["prediction_reason"] == "none: latency is not rising (stable over the last 30 min)"

    rising = by_name["rising"]
    assert rising["trend"]["direction"] == "degrading" and rising["trend"]["significant"]
    assert rising["trend"]["slope_ms_per_hour"] == pytest.approx(1_200, rel=0.05)
    assert rising["trend"]["reason"].startswith("rising 1")
    prediction = rising["prediction"]
    assert prediction["band"] == 0.8 and prediction["basis"] == "if the trend of the last 30 min continues"
    assert prediction["source"] == "probe" and prediction["threshold"] == 1_000 and rising["prediction_reason"] == ""
    at = timezone.datetime.fromisoformat(prediction["at"])
    assert (
        timezone.datetime.fromisoformat(prediction["earliest"])
        <= at
        <= timezone.datetime.fromisoformat(prediction["latest"])
    )
    # 405 ms now, 1200 ms/h: 1000 ms in about 30 minutes
    assert timedelta(minutes=25) < at - now < timedelta(minutes=35)

    assert by_name["over"]["prediction"] is None
    assert by_name["over"]["prediction_reason"] == "none: already at the 100 ms target"
    slow = by_name["slow-check"]  # its probe is flat; its check call, which decides its status, is rising
    assert slow["trend"]["direction"] == "degrading" and slow["trend"]["source"] == "check"
    assert slow["prediction"]["source"] == "check" and slow["prediction"]["threshold"] == 2_000
