"""Running a fusion query end to end (async: the API view; `run_query` wraps it for the demo and commands).

parse -> cache -> single flight -> plan the sources (registry, health status, trust) -> fan out on the fleet loop
-> evaluate -> learn trust and store the run -> publish on the bus -> cache a success.
"""

from __future__ import annotations

import copy
import time
import uuid
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.utils import timezone

from fleet.calls import await_on_fleet
from fusion import caching
from fusion.evaluation import Evaluation, evaluate
from fusion.fanout import askable, fan_out
from fusion.models import FusionRun
from fusion.query import FusionQuery, QueryError
from fusion.services import record_run
from fusion.sources import SourcePlan, cached_plan, plan_sources
from mcp_client import Deadline
from orchestrator_site.database_access import with_database
from pipeline.running import publish

EVENT_STREAM = "fusion.runs"


def answer_json(run: FusionRun, **extra: Any) -> dict[str, Any]:
    """The API's answer for a run (also what the cache keeps)."""
    explanation = run.explanation or {}
    figures = (explanation.get("result") or {}).get("fields") or {}
    single = next(iter(figures.values())) if len(figures) == 1 else None
    return {
        "run_id": run.pk,
        "value": run.value,
        "quorum_met": run.quorum_met,
        "confidence": run.confidence,
        "sources": run.sources,
        "strategy": run.strategy,
        "options": run.options,
        "tool": run.tool or None,
        "resource": run.resource or None,
        "fields": figures,
        "dispersion": single["dispersion"] if single else None,
        "interval": single["interval"] if single else None,
        "quorum": run.quorum,
        "valid_answers": (explanation.get("quorum") or {}).get("valid"),
        "decision": explanation.get("decision"),
        "error": run.error or None,
        "duration_ms": round(run.duration_ms, 2),
        "created_at": run.created_at.isoformat(),
        "cached": False,
        "shared": False,
        **extra,
    }


def run_event(run: FusionRun) -> dict[str, Any]:
    return {
        "run_id": run.pk,
        "tool": run.tool or None,
        "resource": run.resource or None,
        "arguments": run.arguments,
        "strategy": run.strategy,
        "value": run.value,
        "quorum_met": run.quorum_met,
        "confidence": run.confidence,
        "error": run.error or None,
        "sources_asked": run.sources_asked,
        "sources_used": run.sources_used,
        "duration_ms": round(run.duration_ms, 2),
        "caller": run.caller,
        "created_at": run.created_at.isoformat(),
    }


def _quorum_checked(query: FusionQuery, plans: list[SourcePlan]) -> list[SourcePlan]:
    asked = [plan for plan in plans if askable(plan)]
    if query.quorum > len(asked):
        resting = [plan.server for plan in plans if not askable(plan)]
        why = f" ({', '.join(resting)} in maintenance, not asked)" if resting else ""
        raise QueryError({"quorum": [f"Only {len(asked)} source(s) can be asked{why}; the quorum is {query.quorum}."]})
    return plans


async def _plan(query: FusionQuery, started_at: datetime) -> list[SourcePlan]:
    """From what this process keeps when it can (no thread, no database), else read in a thread."""
    plans = cached_plan(query, started_at)
    if plans is None:
        plans = await with_database(plan_sources, query, started_at)
    return _quorum_checked(query, plans)


def _record(
    query: FusionQuery,
    plans: list[SourcePlan],
    evaluation: Evaluation,
    *,
    caller: str,
    started_at: datetime,
    started: float,
    phases: dict[str, float],
) -> dict[str, Any]:
    caching.count("fan_outs")  # counted here, in the one thread step, rather than in a thread step of its own
    run = record_run(
        query,
        evaluation,
        caller=caller,
        started_at=started_at,
        started=started,
        phases=phases,
        server_ids={plan.server: plan.server_id for plan in plans},
    )
    publish(EVENT_STREAM, "completed" if evaluation.ok else "failed", run_event(run))
    answer = answer_json(run)
    if evaluation.ok:
        caching.keep_answer(query.cache_key(), answer, query.cache_ttl_seconds)
    return answer


async def _fresh(query: FusionQuery, caller: str) -> dict[str, Any]:
    """Planning and recording are database work (a thread); the fan-out is awaited, holding no thread."""
    started_at = timezone.now()
    started = time.perf_counter()
    plans = await _plan(query, started_at)
    planned = time.perf_counter()
    correlation_id = f"fusion-{uuid.uuid4().hex[:12]}"
    # The fan-out answers by the query's deadline on the fleet loop (a late source is cancelled and reported).
    replies = await await_on_fleet(
        fan_out(query, plans, correlation_id),
        deadline=Deadline.within(query.deadline_seconds),
        what=f"the fusion fan-out {correlation_id}",
    )
    answered = time.perf_counter()
    evaluation = evaluate(query, plans, replies, timezone.now())
    evaluated = time.perf_counter()
    phases = {
        "plan_ms": round((planned - started) * 1000.0, 2),
        "fan_out_ms": round((answered - planned) * 1000.0, 2),
        "evaluate_ms": round((evaluated - answered) * 1000.0, 2),
    }
    return await with_database(
        _record, query, plans, evaluation, caller=caller, started_at=started_at, started=started, phases=phases
    )


async def run_query_async(query: FusionQuery, *, caller: str) -> dict[str, Any]:
    """The fused answer (a dict for the API). `answer["error"]` is set when there is no usable value; QueryError
    when the query cannot be asked at all (unknown servers, bad arguments)."""
    key = query.cache_key()
    if query.cache_ttl_seconds > 0:
        cached = await with_database(caching.cached_answer, key)
        if cached is not None:
            return {**cached, "cached": True}
    answer, shared = await caching.single_flight.run(key, lambda: _fresh(query, caller))
    if shared:
        await with_database(caching.count, "shared")
        return {**copy.deepcopy(answer), "shared": True}
    return answer


def run_query(query: FusionQuery, *, caller: str) -> dict[str, Any]:
    """`run_query_async` for sync code (the demo's thread, commands, benchmarks)."""
    return async_to_sync(run_query_async)(query, caller=caller)
