"""Reads: each server's availability, latency, success rate, trend and prediction, from rollups and raw samples."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Max, Sum
from django.utils import timezone

from health.config import check_config
from health.models import HealthRollup, HealthSample, Resolution, SampleKind
from health.rollups import floor_hour, minute_bucket, percentile
from health.trends import fit, predict_crossing, trend
from registry.models import Server

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
PREDICTION_HORIZON = timedelta(hours=24)
SETTLED_SUMS_KEPT = 64  # windows x server sets; each entry is one row per server


class Counts:
    __slots__ = ("checks", "ok", "calls", "calls_ok", "weighted", "p99", "weight")

    def __init__(self) -> None:
        self.checks = self.ok = self.calls = self.calls_ok = 0
        self.weighted: dict[str, float] = {"p50": 0.0, "p95": 0.0}
        self.p99 = 0.0
        self.weight = 0

    def add(self, row: dict[str, Any]) -> None:
        """Add an aggregate of rollups (sums, as `rollup_sums` makes them)."""
        self.checks += row["checks"] or 0
        self.ok += row["ok"] or 0
        self.calls += row["calls"] or 0
        self.calls_ok += row["calls_ok"] or 0
        self.weighted["p50"] += row["p50_weighted"] or 0.0
        self.weighted["p95"] += row["p95_weighted"] or 0.0
        self.p99 = max(self.p99, row["p99"] or 0.0)
        self.weight += row["weight"] or 0


def rollup_row(row: HealthRollup) -> dict[str, Any]:
    """One rollup as the sums `rollup_sums` makes of many."""
    return {
        "server_id": row.server_id,
        "checks": row.checks,
        "ok": row.ok,
        "calls": row.calls,
        "calls_ok": row.calls_ok,
        "p50_weighted": (row.latency_p50_ms or 0) * row.latency_count,
        "p95_weighted": (row.latency_p95_ms or 0) * row.latency_count,
        "p99": row.latency_p99_ms,
        "weight": row.latency_count,
    }


def rollup_sums(rows: Any) -> Any:
    """Per server, the sums a window needs, computed by the database (not row by row in Python)."""
    return rows.values("server_id").annotate(
        checks=Sum("checks"),
        ok=Sum("ok"),
        calls=Sum("calls"),
        calls_ok=Sum("calls_ok"),
        p50_weighted=Sum(F("latency_p50_ms") * F("latency_count")),
        p95_weighted=Sum(F("latency_p95_ms") * F("latency_count")),
        p99=Max("latency_p99_ms"),
        weight=Sum("latency_count"),
    )


def _last_start(resolution: str) -> datetime | None:
    # Uses the (resolution, start) index: one row read, whatever the table's size.
    return HealthRollup.objects.filter(resolution=resolution).order_by("-start").values_list("start", flat=True).first()


def rollup_edges() -> tuple[datetime | None, datetime | None]:
    """Where the hour rollups end and where the minute rollups end (exclusive)."""
    last_hour, last_minute = _last_start(Resolution.HOUR), _last_start(Resolution.MINUTE)
    return (
        last_hour + timedelta(hours=1) if last_hour is not None else None,
        last_minute + timedelta(minutes=1) if last_minute is not None else None,
    )


def window_counts(
    server_ids: list[int],
    since: datetime,
    now: datetime,
    edges: tuple[datetime | None, datetime | None] | None = None,
    shared: dict[tuple[str, datetime, datetime], list[dict[str, Any]]] | None = None,
) -> dict[int, Counts]:
    """Checks and calls of each server since `since`, each stretch from the coarsest level that covers it: whole
    hours from hour buckets, the ragged ends from minute buckets, the last moments from raw samples.

    Windows that end at the same moment share their last stretches: pass the same `shared` dict to each and those
    are read once."""
    counts: defaultdict[int, Counts] = defaultdict(Counts)
    hour_end, minute_end = edges if edges is not None else rollup_edges()
    shared = {} if shared is None else shared

    def add_sums(resolution: str, start: datetime, end: datetime, *, settled: bool = False) -> None:
        if start >= end:
            return
        found = shared.get((resolution, start, end))
        if found is None:
            rows = HealthRollup.objects.filter(
                server_id__in=server_ids, resolution=resolution, start__gte=start, start__lt=end
            )
            found = _settled_sums(rows, server_ids, resolution, start, end) if settled else list(rollup_sums(rows))
            shared[(resolution, start, end)] = found
        for row in found:
            counts[row["server_id"]].add(row)

    first_whole_hour = floor_hour(since) + (timedelta(hours=1) if floor_hour(since) < since else timedelta(0))
    cursor = since
    if hour_end is not None and first_whole_hour < hour_end:
        add_sums(Resolution.MINUTE, since, first_whole_hour)
        # Hours before the last one never change again (the last may still be re-rolled with a late sample).
        last_hour = max(first_whole_hour, hour_end - timedelta(hours=1))
        add_sums(Resolution.HOUR, first_whole_hour, last_hour, settled=True)
        add_sums(Resolution.HOUR, last_hour, hour_end)
        cursor = hour_end
    if minute_end is not None and cursor < minute_end:
        add_sums(Resolution.MINUTE, cursor, minute_end)
        cursor = minute_end
    recent = shared.get(("raw", cursor, now))
    if recent is None:
        raw: defaultdict[int, list[HealthSample]] = defaultdict(list)
        for sample in HealthSample.objects.filter(server_id__in=server_ids, at__gte=cursor, at__lt=now).only(
            "server_id", "kind", "ok", "latency_ms", "in_maintenance"
        ):
            raw[sample.server_id].append(sample)
        recent = [rollup_row(minute_bucket(server_id, cursor, samples)) for server_id, samples in raw.items()]
        shared[("raw", cursor, now)] = recent
    for row in recent:
        counts[row["server_id"]].add(row)
    return counts


def _settled_sums(
    rows: Any, server_ids: list[int], resolution: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Sums of rollups that no longer change (whole hours before the last), remembered by this process: the 7- and
    30-day figures would otherwise sum thousands of rows per server on every look at the dashboard, for an answer
    that moves once an hour. The key holds the range and the servers, so the next hour is a new entry."""
    servers = hashlib.sha256(",".join(map(str, sorted(server_ids))).encode()).hexdigest()[:32]
    key = (resolution, start, end, servers)
    with _settled_lock:
        found = _settled.get(key)
        if found is not None:
            _settled.move_to_end(key)
            return found
    found = list(rollup_sums(rows))
    with _settled_lock:
        _settled[key] = found
        while len(_settled) > SETTLED_SUMS_KEPT:
            _settled.popitem(last=False)
    return found


def forget_settled_sums() -> None:
    """Drop what `_settled_sums` remembers (tests that rewrite history; an operator's repair of old rollups)."""
    with _settled_lock:
        _settled.clear()


_settled: OrderedDict[tuple[str, datetime, datetime, str], list[dict[str, Any]]] = OrderedDict()
_settled_lock = threading.Lock()


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def trend_inputs(server_ids: list[int], now: datetime) -> dict[int, tuple[list[float], list[float]]]:
    """Each server's successful probe latencies over the trend window, as (epoch seconds, ms) series."""
    since = now - timedelta(seconds=settings.HEALTH_TREND_WINDOW_SECONDS)
    series: defaultdict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    if not server_ids:
        # No servers, no series. And the guard is needed: Django compiles `__in=[]` to "matches nothing" by raising
        # EmptyResultSet from the compiler, which the ORM catches for its own queries but `sql_with_params()` below
        # hands to us (one alert rule whose scope matched no server used to fail every alert round with it).
        return series
    rows = (
        HealthSample.objects.filter(
            server_id__in=server_ids, kind=SampleKind.PROBE, ok=True, at__gte=since, latency_ms__isnull=False
        )
        .values_list("server_id", "at", "latency_ms")
        .order_by("at")
    )
    # Tens of thousands of rows for the fleet: read without the ORM's per-value converters (which made a
    # timezone-aware datetime of every timestamp, the larger part of the health API's time), epoch seconds directly.
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for server_id, at, latency in cursor.fetchall():
            xs, ys = series[server_id]
            xs.append(_epoch(at))
            ys.append(latency)
    return series


def _epoch(value: datetime | str) -> float:
    if isinstance(value, str):  # SQLite keeps UTC as text
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    return value.timestamp()


def fleet_health(servers: list[Server] | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or timezone.now()
    servers = servers if servers is not None else list(Server.objects.order_by("name"))
    ids = [server.pk for server in servers]
    edges = rollup_edges()
    shared: dict[tuple[str, datetime, datetime], list[dict[str, Any]]] = {}
    windows = {label: window_counts(ids, now - span, now, edges, shared) for label, span in WINDOWS.items()}
    series = trend_inputs(ids, now)
    results = []
    for server in servers:
        day = windows["24h"].get(server.pk, Counts())
        config = check_config(server_id=server.pk, name=server.name, metadata=server.metadata)
        xs, ys = series.get(server.pk, ([], []))
        line = fit(xs, ys)
        found = trend(line)
        crossing = predict_crossing(
            line, config.policy.latency_target_ms, now.timestamp(), PREDICTION_HORIZON.total_seconds()
        )
        results.append(
            {
                "server": server.name,
                "status": server.status,
                "status_reason": server.status_reason,
                "availability": {
                    label: _ratio(counts.get(server.pk, Counts()).ok, counts.get(server.pk, Counts()).checks)
                    for label, counts in windows.items()
                },
                "latency_ms": {
                    "p50": round(day.weighted["p50"] / day.weight, 2) if day.weight else None,
                    "p95": round(day.weighted["p95"] / day.weight, 2) if day.weight else None,
                    "p99": round(day.p99, 2) if day.weight else None,
                    "approximate": True,
                },
                "success_rate": _ratio(day.calls_ok, day.calls) if day.calls else _ratio(day.ok, day.checks),
                "checks_24h": day.checks,
                "trend": None
                if found is None
                else {
                    "direction": found.direction,
                    "slope_ms_per_hour": round(found.slope_per_hour, 3),
                    "confidence": found.confidence,
                    "points": found.points,
                },
                "prediction": None
                if crossing is None
                else {
                    "metric": "latency_ms",
                    "threshold": crossing.threshold,
                    "at": _iso(crossing.at),
                    "earliest": _iso(crossing.earliest),
                    "latest": _iso(crossing.latest) if crossing.latest is not None else None,
                },
            }
        )
    return results


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.get_current_timezone()).isoformat()


def tool_figures(server: Server, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per tool, from real and synthetic calls of the last 24 hours: calls, success rate, latency p50 and p95."""
    now = now or timezone.now()
    grouped: defaultdict[str, list[tuple[bool, float | None]]] = defaultdict(list)
    for tool, ok, latency in HealthSample.objects.filter(
        server=server, at__gte=now - WINDOWS["24h"], kind__in=[SampleKind.SYNTHETIC, SampleKind.PASSIVE]
    ).values_list("tool", "ok", "latency_ms"):
        grouped[tool or "(resource reads)"].append((ok, latency))
    figures = []
    for tool, calls in sorted(grouped.items()):
        latencies = sorted(latency for ok, latency in calls if ok and latency is not None)
        figures.append(
            {
                "tool": tool,
                "calls": len(calls),
                "success_rate": _ratio(sum(1 for ok, _ in calls if ok), len(calls)),
                "latency_p50_ms": percentile(latencies, 0.5),
                "latency_p95_ms": percentile(latencies, 0.95),
            }
        )
    return figures
