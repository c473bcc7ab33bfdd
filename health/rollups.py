"""Samples rolled up per minute and per hour, and retention, so the database stays bounded and long ranges cheap.

Minute buckets come from raw samples, hour buckets from minute buckets. An hour's latency percentiles are the
count-weighted mean of its minutes' (p50, p95) and the largest minute p99 and max: approximations, marked as such in
the API, good enough for charts and availability (whose counts are exact).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max, Min
from django.utils import timezone

from health.models import HealthRollup, HealthSample, Resolution, SampleKind

UPDATED = [
    "checks",
    "ok",
    "in_maintenance",
    "calls",
    "calls_ok",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "latency_sum_ms",
    "latency_count",
]


def percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def minute_bucket(server_id: int, start: datetime, samples: list[HealthSample]) -> HealthRollup:
    # Checks in a maintenance window are counted apart: they are left out of availability.
    probes = [s for s in samples if s.kind == SampleKind.PROBE and not s.in_maintenance]
    calls = [s for s in samples if s.kind != SampleKind.PROBE]
    latencies = sorted(s.latency_ms for s in probes if s.ok and s.latency_ms is not None)
    return HealthRollup(
        server_id=server_id,
        resolution=Resolution.MINUTE,
        start=start,
        checks=len(probes),
        ok=sum(1 for s in probes if s.ok),
        in_maintenance=sum(1 for s in samples if s.kind == SampleKind.PROBE and s.in_maintenance),
        calls=len(calls),
        calls_ok=sum(1 for s in calls if s.ok),
        latency_p50_ms=percentile(latencies, 0.50),
        latency_p95_ms=percentile(latencies, 0.95),
        latency_p99_ms=percentile(latencies, 0.99),
        latency_max_ms=latencies[-1] if latencies else None,
        latency_sum_ms=sum(latencies),
        latency_count=len(latencies),
    )


def hour_bucket(server_id: int, start: datetime, minutes: list[HealthRollup]) -> HealthRollup:
    with_latency = [m for m in minutes if m.latency_count]
    weight = sum(m.latency_count for m in with_latency)

    def weighted(field: str) -> float | None:
        if not weight:
            return None
        return sum(getattr(m, field) * m.latency_count for m in with_latency) / weight

    return HealthRollup(
        server_id=server_id,
        resolution=Resolution.HOUR,
        start=start,
        checks=sum(m.checks for m in minutes),
        ok=sum(m.ok for m in minutes),
        in_maintenance=sum(m.in_maintenance for m in minutes),
        calls=sum(m.calls for m in minutes),
        calls_ok=sum(m.calls_ok for m in minutes),
        latency_p50_ms=weighted("latency_p50_ms"),
        latency_p95_ms=weighted("latency_p95_ms"),
        latency_p99_ms=max((m.latency_p99_ms for m in with_latency), default=None),
        latency_max_ms=max((m.latency_max_ms for m in with_latency), default=None),
        latency_sum_ms=sum(m.latency_sum_ms for m in minutes),
        latency_count=weight,
    )


def _save(rows: list[HealthRollup]) -> int:
    if rows:
        HealthRollup.objects.bulk_create(
            rows,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["server", "resolution", "start"],
            update_fields=UPDATED,
        )
    return len(rows)


def roll_up(now: datetime | None = None) -> dict[str, int]:
    """Roll up every complete minute and hour not rolled up yet (re-rolling the last one is harmless), and prune."""
    now = now or timezone.now()
    written = {"minutes": 0, "hours": 0}
    last_minute = HealthRollup.objects.filter(resolution=Resolution.MINUTE).aggregate(last=Max("start"))["last"]
    first_raw = HealthSample.objects.aggregate(first=Min("at"))["first"]
    start = last_minute if last_minute is not None else (floor_minute(first_raw) if first_raw else None)
    end = floor_minute(now)
    if start is not None and start < end:
        grouped: defaultdict[tuple[int, datetime], list[HealthSample]] = defaultdict(list)
        for sample in HealthSample.objects.filter(at__gte=start, at__lt=end).only(
            "server_id", "at", "kind", "ok", "latency_ms", "in_maintenance"
        ):
            grouped[(sample.server_id, floor_minute(sample.at))].append(sample)
        written["minutes"] = _save([minute_bucket(sid, at, rows) for (sid, at), rows in grouped.items()])

    last_hour = HealthRollup.objects.filter(resolution=Resolution.HOUR).aggregate(last=Max("start"))["last"]
    first_minute = HealthRollup.objects.filter(resolution=Resolution.MINUTE).aggregate(first=Min("start"))["first"]
    start = last_hour if last_hour is not None else (floor_hour(first_minute) if first_minute else None)
    end = floor_hour(now)
    if start is not None and start < end:
        minutes: defaultdict[tuple[int, datetime], list[HealthRollup]] = defaultdict(list)
        for row in HealthRollup.objects.filter(resolution=Resolution.MINUTE, start__gte=start, start__lt=end):
            minutes[(row.server_id, floor_hour(row.start))].append(row)
        written["hours"] = _save([hour_bucket(sid, at, rows) for (sid, at), rows in minutes.items()])
    written.update(prune(now))
    return written


def prune(now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    raw, _ = HealthSample.objects.filter(at__lt=now - timedelta(seconds=settings.HEALTH_RAW_RETENTION_SECONDS)).delete()
    minutes, _ = HealthRollup.objects.filter(
        resolution=Resolution.MINUTE, start__lt=now - timedelta(seconds=settings.HEALTH_MINUTE_RETENTION_SECONDS)
    ).delete()
    hours, _ = HealthRollup.objects.filter(
        resolution=Resolution.HOUR, start__lt=now - timedelta(seconds=settings.HEALTH_HOUR_RETENTION_SECONDS)
    ).delete()
    return {"pruned_samples": raw, "pruned_minutes": minutes, "pruned_hours": hours}
