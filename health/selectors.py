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

from health import trends
from health.config import check_config
from health.models import HealthRollup, HealthSample, Resolution, SampleKind
from health.rollups import floor_hour, minute_bucket, percentile
from health.trends import assess, predict_crossing
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


PROBE = "probe"
CHECK = "check"


def check_tool(metadata: Any) -> str | None:
    """The tool of the server's synthetic check, when it has one: its latency is what decides the status."""
    config = check_config(server_id=0, name="", metadata=metadata)
    return config.synthetic.tool if config.synthetic is not None else None


def latency_series(
    server_ids: list[int], now: datetime, since: datetime | None = None
) -> dict[int, dict[tuple[str, str], tuple[list[float], list[float]]]]:
    """Each server's successful check latencies since `since` (default: the trend window), as (epoch seconds, ms)
    series keyed by (PROBE, "") for the liveness probe and (CHECK, tool) for a synthetic call."""
    since = since or now - timedelta(seconds=settings.HEALTH_TREND_WINDOW_SECONDS)
    series: defaultdict[int, dict[tuple[str, str], tuple[list[float], list[float]]]] = defaultdict(dict)
    if not server_ids:
        # No servers, no series. And the guard is needed: Django compiles `__in=[]` to "matches nothing" by raising
        # EmptyResultSet from the compiler, which the ORM catches for its own queries but `sql_with_params()` below
        # hands to us (one alert rule whose scope matched no server used to fail every alert round with it).
        return series
    rows = (
        HealthSample.objects.filter(
            server_id__in=server_ids,
            kind__in=[SampleKind.PROBE, SampleKind.SYNTHETIC],
            ok=True,
            at__gte=since,
            at__lt=now,
            latency_ms__isnull=False,
        )
        .values_list("server_id", "at", "kind", "tool", "latency_ms")
        .order_by("at")
    )
    # Tens of thousands of rows for the fleet: read without the ORM's per-value converters (which made a
    # timezone-aware datetime of every timestamp, the larger part of the health API's time), epoch seconds directly.
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for server_id, at, kind, tool, latency in cursor.fetchall():
            key = (PROBE, "") if kind == SampleKind.PROBE else (CHECK, tool)
            found = series[server_id].get(key)
            if found is None:
                found = series[server_id][key] = ([], [])
            found[0].append(_epoch(at))
            found[1].append(latency)
    return series


def deciding_series(
    by_source: dict[tuple[str, str], tuple[list[float], list[float]]], tool: str | None
) -> tuple[str, tuple[list[float], list[float]]]:
    """The series whose latency decides the status: the synthetic call's when the server has one (even while it has
    no successful call yet: then there is no figure, not the probe's in its place), else the probe's."""
    if tool is not None:
        return CHECK, by_source.get((CHECK, tool), ([], []))
    return PROBE, by_source.get((PROBE, ""), ([], []))


def trend_inputs(server_ids: list[int], now: datetime) -> dict[int, tuple[list[float], list[float]]]:
    """Each server's latencies over the trend window from what decides its status (its synthetic call when it has
    one, else its liveness probe), as (epoch seconds, ms) series: what trends and predictions are made of."""
    if not server_ids:
        return {}
    series = latency_series(server_ids, now)
    tools = dict(Server.objects.filter(pk__in=server_ids).values_list("pk", "metadata"))
    return {
        server_id: deciding_series(by_source, check_tool(tools.get(server_id)))[1]
        for server_id, by_source in series.items()
    }


def _epoch(value: datetime | str) -> float:
    if isinstance(value, str):  # SQLite keeps UTC as text
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    if value.tzinfo is None:
        # SQLite's datetime converter gives naive UTC; `timestamp()` would read it as the machine's local time and
        # move every prediction by the machine's UTC offset.
        return value.replace(tzinfo=UTC).timestamp()
    return value.timestamp()


def latency_figures(ys: list[float], source: str, tool: str, window_seconds: float) -> dict[str, Any]:
    """Percentiles of one source's latencies over the window, saying what was measured and over how long."""
    ordered = sorted(ys)

    def at(fraction: float) -> float | None:
        found = percentile(ordered, fraction)
        return round(found, 2) if found is not None else None

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "approximate": False,
        "source": source,
        "tool": tool,
        "label": f"check {tool}" if source == CHECK else "probe",
        "window_seconds": window_seconds,
        "samples": len(ordered),
    }


def _window_words(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 60:.0f} min"


def trend_and_prediction(
    xs: list[float], ys: list[float], *, source: str, target_ms: float, now: datetime, window_seconds: float
) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """The trend of the deciding latency, its predicted crossing of the target (None: with the reason why not)."""
    found, line = assess(xs, ys)
    window = _window_words(window_seconds)
    trend_figures = {
        "direction": found.direction,
        "slope_ms_per_hour": round(found.slope_per_hour, 3) if found.slope_per_hour is not None else None,
        "confidence": found.confidence,
        "points": found.points,
        "reason": found.reason,
        "significant": found.significant,
        "material": found.material,
        "source": source,
        "window_seconds": window_seconds,
        "min_window_seconds": trends.MIN_WINDOW_SECONDS,
    }
    if found.direction is None:
        return trend_figures, None, found.reason
    if found.direction != "degrading":
        return trend_figures, None, f"none: latency is not rising ({found.direction} over the last {window})"
    assert line is not None
    if line.at(now.timestamp()) >= target_ms:
        return trend_figures, None, f"none: already at the {target_ms:.0f} ms target"
    crossing = predict_crossing(line, target_ms, now.timestamp(), PREDICTION_HORIZON.total_seconds())
    if crossing is None:
        return trend_figures, None, f"none: not reaching {target_ms:.0f} ms within 24 h if the trend continues"
    prediction = {
        "metric": "latency_ms",
        "threshold": crossing.threshold,
        "at": _iso(crossing.at),
        "earliest": _iso(crossing.earliest),
        "latest": _iso(crossing.latest) if crossing.latest is not None else None,
        "band": round(crossing.band, 2),
        "source": source,
        "basis": f"if the trend of the last {window} continues",
    }
    return trend_figures, prediction, ""


def fleet_health(servers: list[Server] | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or timezone.now()
    servers = servers if servers is not None else list(Server.objects.order_by("name"))
    ids = [server.pk for server in servers]
    edges = rollup_edges()
    shared: dict[tuple[str, datetime, datetime], list[dict[str, Any]]] = {}
    windows = {label: window_counts(ids, now - span, now, edges, shared) for label, span in WINDOWS.items()}
    window_seconds = float(settings.HEALTH_TREND_WINDOW_SECONDS)
    series = latency_series(ids, now)
    results = []
    for server in servers:
        day = windows["24h"].get(server.pk, Counts())
        config = check_config(server_id=server.pk, name=server.name, metadata=server.metadata)
        tool = config.synthetic.tool if config.synthetic is not None else None
        by_source = series.get(server.pk, {})
        source, (xs, ys) = deciding_series(by_source, tool)
        found_trend, prediction, prediction_reason = trend_and_prediction(
            xs,
            ys,
            source=source,
            target_ms=config.policy.latency_target_ms,
            now=now,
            window_seconds=window_seconds,
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
                "latency_source": source,
                "latency_ms": latency_figures(ys, source, tool or "", window_seconds),
                "probe_latency_ms": latency_figures(by_source.get((PROBE, ""), ([], []))[1], PROBE, "", window_seconds),
                "latency_target_ms": config.policy.latency_target_ms,
                "success_rate": _ratio(day.calls_ok, day.calls) if day.calls else _ratio(day.ok, day.checks),
                "checks_24h": day.checks,
                "trend": found_trend,
                "prediction": prediction,
                "prediction_reason": prediction_reason,
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
