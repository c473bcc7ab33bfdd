"""Reads: run history with its figures, trust scores."""

from __future__ import annotations

from typing import Any

from django.db.models import Avg, Count, Max, Q, QuerySet
from django.utils import timezone

from fusion import caching
from fusion.models import FusionRun, SourceTrust
from fusion.quality import decayed_trust


def filtered_runs(params: Any) -> QuerySet[FusionRun]:
    """?tool=, ?strategy=, ?quorum_met=true|false, ?server= (a source asked)."""
    rows = FusionRun.objects.recent()
    if params.get("tool"):
        rows = rows.filter(tool=params["tool"])
    if params.get("strategy"):
        rows = rows.filter(strategy=params["strategy"])
    if params.get("quorum_met") in ("true", "false"):
        rows = rows.filter(quorum_met=params["quorum_met"] == "true")
    return rows


def run_statistics(rows: QuerySet[FusionRun]) -> dict[str, Any]:
    figures = rows.aggregate(
        runs=Count("id"),
        quorum_met=Count("id", filter=Q(quorum_met=True)),
        failed=Count("id", filter=~Q(error="")),
        mean_duration_ms=Avg("duration_ms"),
        max_duration_ms=Max("duration_ms"),
        mean_confidence=Avg("confidence"),
        mean_sources_used=Avg("sources_used"),
    )
    durations = list(rows.order_by("duration_ms").values_list("duration_ms", flat=True)[:10_000])
    figures["p95_duration_ms"] = durations[int(0.95 * (len(durations) - 1))] if durations else None
    figures["by_strategy"] = dict(
        rows.order_by().values_list("strategy").annotate(count=Count("id")).values_list("strategy", "count")
    )
    figures["cache"] = caching.counters()
    for key in ("mean_duration_ms", "max_duration_ms", "mean_confidence", "mean_sources_used"):
        if figures[key] is not None:
            figures[key] = round(figures[key], 3)
    return figures


def trust_rows(subject: str | None = None) -> list[dict[str, Any]]:
    now = timezone.now()
    rows = SourceTrust.objects.select_related("server")
    if subject:
        rows = rows.filter(subject=subject)
    return [
        {
            "server": row.server.name,
            "subject": row.subject,
            "score": round(decayed_trust(row.score, row.updated_at, now), 4),
            "stored_score": round(row.score, 4),
            "observations": row.observations,
            "agreements": row.agreements,
            "updated_at": row.updated_at.isoformat(),
        }
        for row in rows
    ]
