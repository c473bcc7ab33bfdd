"""Writes: a fusion run with its explanation, and the trust its answers taught us (one transaction)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from fusion.evaluation import Evaluation
from fusion.models import FusionRun, SourceTrust
from fusion.quality import decayed_trust, learned_trust
from fusion.query import FusionQuery
from fusion.sources import planning_cache, trust_learned
from registry.models import Server

_runs_since_prune = 0
PRUNE_EVERY_RUNS = 200


def learn_trust(
    query: FusionQuery,
    evaluation: Evaluation,
    now: datetime,
    written: list[SourceTrust] | None = None,
    server_ids: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Fold each observation into its source's trust (rows locked, read and written in bulk); the updates, for the
    explanation. `server_ids` (name -> id, from the plans) spares reading the servers; the rows written are added to
    `written`."""
    if not evaluation.observations:
        return []
    names = [observation.server for observation in evaluation.observations]
    if server_ids is None:
        server_ids = dict(Server.objects.filter(name__in=names).values_list("name", "id"))
    ids = {name: server_ids[name] for name in names if name in server_ids}
    rows = _locked_trust(ids.values(), query.subject)
    absent = [pk for pk in ids.values() if pk not in rows]
    if absent:  # first observations: rows at the prior, for servers still there
        existing = Server.objects.filter(pk__in=absent).values_list("pk", flat=True)
        missing = [
            SourceTrust(server_id=pk, subject=query.subject, score=settings.FUSION_TRUST_PRIOR, updated_at=now)
            for pk in existing
        ]
        SourceTrust.objects.bulk_create(missing, ignore_conflicts=True)
        if missing:  # re-read, so a row another run created meanwhile is the one we update
            rows = _locked_trust(ids.values(), query.subject)
    updates: list[dict[str, Any]] = []
    changed: list[SourceTrust] = []
    for observation in evaluation.observations:
        server_id = ids.get(observation.server)
        row = rows.get(server_id) if server_id is not None else None
        if row is None:
            continue  # deleted while we asked
        before = decayed_trust(row.score, row.updated_at, now) if row.observations else row.score
        after = learned_trust(before, observation.agreed)
        row.score, row.updated_at = after, now
        row.observations += 1
        row.agreements += int(observation.agreed >= 0.5)
        changed.append(row)
        updates.append(
            {
                "server": observation.server,
                "before": round(before, 4),
                "after": round(after, 4),
                "agreed": observation.agreed >= 0.5,
                "detail": observation.detail,
            }
        )
    _write_trust(changed)
    if written is not None:
        written.extend(changed)
    return updates


def _locked_trust(server_ids: Iterable[int], subject: str) -> dict[int, SourceTrust]:
    """Unordered: the model's ordering (by server name) joins the servers, and FOR UPDATE would lock them too."""
    rows = SourceTrust.objects.select_for_update().filter(server_id__in=list(server_ids), subject=subject)
    return {row.server_id: row for row in rows.order_by()}


def _write_trust(rows: list[SourceTrust]) -> None:
    """One prepared UPDATE run for every row: an ORM bulk_update builds a CASE per column and row, which cost more
    CPU than the rest of a fused query."""
    if not rows:
        return
    quote, adapt = connection.ops.quote_name, connection.ops.adapt_datetimefield_value
    columns = ", ".join(f"{quote(name)} = %s" for name in ("score", "updated_at", "observations", "agreements"))
    statement = f"UPDATE {quote(SourceTrust._meta.db_table)} SET {columns} WHERE {quote('id')} = %s"
    with connection.cursor() as cursor:
        cursor.executemany(
            statement, [(row.score, adapt(row.updated_at), row.observations, row.agreements, row.pk) for row in rows]
        )


def record_run(
    query: FusionQuery,
    evaluation: Evaluation,
    *,
    caller: str,
    started_at: datetime,
    started: float,
    phases: dict[str, float],
    server_ids: Mapping[str, int] | None = None,
) -> FusionRun:
    """`started` is the perf_counter at the start: the duration stored is up to this write (the last step). The trust
    learned is kept for the next plans once committed."""
    generation = planning_cache.generation
    written: list[SourceTrust] = []
    with transaction.atomic():
        evaluation.explanation["trust_updates"] = learn_trust(query, evaluation, started_at, written, server_ids)
        duration_ms = (time.perf_counter() - started) * 1000.0
        evaluation.explanation["timing"] = {
            "timeout_seconds": query.timeout_seconds,
            "deadline_seconds": query.deadline_seconds,
            "duration_ms": round(duration_ms, 2),
            **phases,
        }
        run = FusionRun.objects.create(
            created_at=started_at,
            caller=caller[:150],
            tool=query.tool,
            resource=query.resource,
            arguments=dict(query.arguments),
            query=query.to_json(),
            strategy=query.strategy,
            options=dict(query.options),
            fields=list(query.fields),
            quorum=query.quorum,
            quorum_met=evaluation.quorum_met,
            value=evaluation.value,
            confidence=evaluation.confidence,
            error=evaluation.error,
            sources=evaluation.sources,
            explanation=evaluation.explanation,
            sources_asked=evaluation.asked,
            sources_used=evaluation.used,
            duration_ms=duration_ms,
            cache_key=query.cache_key(),
        )
        trust_learned(query.subject, written, generation)
    _prune_now_and_then(started_at)
    return run


def _prune_now_and_then(now: datetime) -> None:
    """Runs older than the retention go, checked every few hundred runs so the table stays bounded."""
    global _runs_since_prune
    _runs_since_prune += 1
    if _runs_since_prune < PRUNE_EVERY_RUNS:
        return
    _runs_since_prune = 0
    prune_runs(now)


def prune_runs(now: datetime) -> int:
    cutoff = now - timedelta(days=settings.FUSION_RUN_RETENTION_DAYS)
    deleted, _ = FusionRun.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def reset_trust(rows: Any, now: datetime) -> int:
    """Back to the prior (the admin's action, after a source was fixed). A queryset update sends no signal: the
    trust kept for planning is cleared here."""
    reset = rows.update(score=settings.FUSION_TRUST_PRIOR, observations=0, agreements=0, updated_at=now)
    planning_cache.clear_now_and_on_commit()
    return reset
