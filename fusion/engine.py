"""Running a fusion query end to end (sync: a view, the demo, a command).

parse -> cache -> single flight -> plan the sources (registry, health status, trust) -> fan out on the fleet loop
-> evaluate -> learn trust and store the run -> publish on the bus -> cache a success.
"""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from django.utils import timezone

from fleet.calls import HANDOFF_SLACK_SECONDS, run_on_fleet
from fusion import caching
from fusion.evaluation import evaluate
from fusion.fanout import fan_out
from fusion.models import FusionRun
from fusion.query import FusionQuery, QueryError
from fusion.services import record_run
from fusion.sources import plan_sources
from mcp_client import Deadline
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


def _fresh(query: FusionQuery, caller: str) -> dict[str, Any]:
    started_at = timezone.now()
    started = time.perf_counter()
    plans = plan_sources(query, started_at)
    planned = time.perf_counter()
    if query.quorum > len(plans):
        raise QueryError({"quorum": [f"Only {len(plans)} source(s) can be asked; the quorum is {query.quorum}."]})
    caching.count("fan_outs")
    correlation_id = f"fusion-{uuid.uuid4().hex[:12]}"
    # The fan-out hands the replies back at the deadline, whatever is still out.
    replies = run_on_fleet(
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
    run = record_run(query, evaluation, caller=caller, started_at=started_at, started=started, phases=phases)
    publish(EVENT_STREAM, "completed" if evaluation.ok else "failed", run_event(run))
    answer = answer_json(run)
    if evaluation.ok:
        caching.keep_answer(query.cache_key(), answer, query.cache_ttl_seconds)
    return answer


def run_query(query: FusionQuery, *, caller: str) -> dict[str, Any]:
    """The fused answer (a dict for the API). `answer["error"]` is set when there is no usable value; QueryError
    when the query cannot be asked at all (unknown servers, bad arguments)."""
    key = query.cache_key()
    if query.cache_ttl_seconds > 0:
        cached = caching.cached_answer(key)
        if cached is not None:
            return {**cached, "cached": True}
    # A follower waits for the leader's fan-out (its deadline and the hand-off slack) and one slack more for the
    # leader's own work around it (planning, storing the run).
    answer, shared = caching.single_flight.run(
        key, lambda: _fresh(query, caller), timeout=query.deadline_seconds + 2 * HANDOFF_SLACK_SECONDS
    )
    if shared:
        caching.count("shared")
        return {**copy.deepcopy(answer), "shared": True}
    return answer
