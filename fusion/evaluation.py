"""From the replies to a fused answer with its explanation: validation, quality, the strategy, quorum, confidence
and the agreement each source showed (which the trust learns from). Pure: no database, no network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings

from fusion.answers import Invalid, document_of, numeric_field_names, read_answer
from fusion.fanout import MAINTENANCE, Reply
from fusion.quality import Quality, agreement, quality_of
from fusion.query import FusionQuery
from fusion.sources import SourcePlan
from fusion.strategies import WHOLE_ANSWER, Candidate, Fused, get_strategy, tidy
from mcp_client import ToolCallResult

CONFIDENCE_RULE = (
    "the quality weight of the valid answers that agree with the result (within {bps:g} bps, or equal), "
    "over the quality weight of every source asked"
)


@dataclass
class Observation:
    """What one source's answer says about its trustworthiness on this question."""

    server: str
    agreed: float
    detail: str


@dataclass
class Evaluation:
    ok: bool
    quorum_met: bool
    value: Any
    confidence: float | None
    error: str
    sources: list[dict[str, Any]]
    fields: dict[str, dict[str, Any]]
    valid_answers: int
    explanation: dict[str, Any]
    observations: list[Observation] = field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(1 for row in self.sources if row["state"] == "used")

    @property
    def asked(self) -> int:
        """Sources asked: those in maintenance are listed (excluded, with the reason) but were not asked."""
        return sum(1 for row in self.sources if row["status"] != MAINTENANCE)


def evaluate(query: FusionQuery, plans: Sequence[SourcePlan], replies: Sequence[Reply], now: datetime) -> Evaluation:
    strategy = get_strategy(query.strategy)
    fields = list(query.fields) or [WHOLE_ANSWER]
    plan_of = {plan.server: plan for plan in plans}

    documents: dict[str, Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    for reply in replies:
        plan = plan_of[reply.server]
        rows[reply.server] = {
            "server": reply.server,
            "state": "excluded" if reply.state in ("invalid", MAINTENANCE) else reply.state,
            "value": None,
            "latency_ms": None if reply.latency_ms is None else round(reply.latency_ms, 2),
            "age_ms": None,
            "reason": reply.reason or None,
            "status": plan.status,
            "priority": plan.priority,
        }
        if reply.state == "answered" and reply.result is not None:
            try:
                documents[reply.server] = document_of(reply.result)
            except Invalid as exc:
                rows[reply.server].update(state="failed", reason=str(exc))

    numeric = numeric_field_names(list(documents.values()), list(query.fields))
    qualities: dict[str, Quality] = {}
    candidates: list[Candidate] = []
    readings: dict[str, dict[str, Any]] = {}
    for reply in replies:
        plan, row = plan_of[reply.server], rows[reply.server]
        if reply.server not in documents:
            qualities[reply.server] = quality_of(plan.trust, plan.status, None, None)
            continue
        structured = isinstance(reply.result, ToolCallResult) and reply.result.structured_content is not None
        try:
            reading = read_answer(documents[reply.server], structured, query, plan.output_schema, numeric, now)
        except Invalid as exc:
            row.update(state="excluded", reason=str(exc), value=_shown(documents[reply.server], query))
            qualities[reply.server] = quality_of(plan.trust, plan.status, reply.latency_ms, None)
            continue
        quality = quality_of(plan.trust, plan.status, reply.latency_ms, reading.age_ms)
        qualities[reply.server] = quality
        readings[reply.server] = reading.values
        row.update(
            state="used",
            value=reading.values if query.fields else reading.values[WHOLE_ANSWER],
            age_ms=None if reading.age_ms is None else round(reading.age_ms, 1),
        )
        candidates.append(Candidate(reply.server, reading.values, quality.weight, plan.priority))
    for server, row in rows.items():
        row["weight"] = qualities[server].to_json()

    quorum_met = len(candidates) >= query.quorum
    fused = Fused()
    error = ""
    if quorum_met:
        fused = strategy.fuse(candidates, fields, query.options)
        error = fused.error
        for server, reason in fused.excluded.items():
            rows[server].update(state="excluded", reason=reason)
    else:
        asked_count = sum(1 for reply in replies if reply.state != MAINTENANCE)
        error = (
            f"quorum not met: {len(candidates)} valid answer{'s' if len(candidates) != 1 else ''} of the "
            f"{query.quorum} required ({asked_count} source{'s' if asked_count != 1 else ''} asked)"
        )
    ok = quorum_met and not error
    fused_values = {name: tidy(result.value) for name, result in fused.fields.items()} if ok else {}
    value: Any = None
    if ok:
        value = fused_values if query.fields else fused_values[WHOLE_ANSWER]

    # Not judged: a source that could not answer (failed, timed out) or was not asked (maintenance).
    failed_to_answer = {reply.server for reply in replies if reply.state in ("failed", "timed_out", MAINTENANCE)}
    tolerance = settings.FUSION_AGREEMENT_BPS
    confidence: float | None = None
    observations: list[Observation] = []
    if ok:
        agreeing = 0.0
        for server, values in readings.items():
            agreed, detail = agreement(values, fused_values, tolerance)
            agreeing += qualities[server].weight * agreed
            observations.append(Observation(server, agreed, detail))
        for server, row in rows.items():
            if row["state"] == "excluded" and server not in readings and server not in failed_to_answer:
                observations.append(Observation(server, 0.0, row["reason"] or "invalid answer"))
        asked = sum(quality.weight for server, quality in qualities.items() if rows[server]["status"] != MAINTENANCE)
        confidence = round(agreeing / asked, 4) if asked > 0 else 0.0
        if len(readings) < settings.FUSION_TRUST_MIN_ANSWERS:
            observations = []  # too few answers for a consensus to judge anyone by

    figures = {name or "value": result.to_json() for name, result in fused.fields.items()}
    sources = [rows[reply.server] for reply in replies]
    explanation = {
        "decision": decision_sentence(strategy.name, sources, figures, error, confidence, query.quorum),
        "query": query.to_json(),
        "method": {
            "strategy": strategy.name,
            "description": strategy.description,
            "options": dict(query.options),
        },
        "inputs": sources,
        "exclusions": [
            {"server": row["server"], "state": row["state"], "reason": row["reason"]}
            for row in sources
            if row["state"] != "used"
        ],
        "numeric_fields": [name or "value" for name in numeric],
        "result": {"value": value, "fields": figures, "error": error or None},
        "quorum": {"required": query.quorum, "valid": len(candidates), "met": quorum_met},
        "confidence": {"value": confidence, "rule": CONFIDENCE_RULE.format(bps=tolerance)},
        "trust_updates": [],
    }
    return Evaluation(
        ok=ok,
        quorum_met=quorum_met,
        value=value,
        confidence=confidence,
        error=error,
        sources=sources,
        fields=figures,
        valid_answers=len(candidates),
        explanation=explanation,
        observations=observations,
    )


def _number(value: Any) -> str:
    return f"{value:,.6g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def decision_sentence(
    strategy: str,
    sources: Sequence[dict[str, Any]],
    figures: dict[str, dict[str, Any]],
    error: str,
    confidence: float | None,
    quorum: int,
) -> str:
    """What the strategy decided, in one sentence for a reader (the page shows it above the sources table)."""
    used = [row["server"] for row in sources if row["state"] == "used"]
    asked = [row for row in sources if row["status"] != MAINTENANCE]
    left_out = [
        f"{row['server']} ({(row['reason'] or row['state']).split(':', 1)[0]})"
        for row in sources
        if row["state"] != "used"
    ]
    counted = f"{len(used)} of {len(asked)} source{'s' if len(asked) != 1 else ''} asked"
    left = f"; left out: {', '.join(left_out)}" if left_out else ""
    if error:
        return f"No value: {error}. {counted.capitalize()} gave a usable answer (quorum {quorum}){left}."
    values = ", ".join(
        f"{name} {_number(result['value'])}" if name != "value" else _number(result["value"])
        for name, result in figures.items()
    )
    shown = f" of {confidence:.0%}" if confidence is not None else ""
    return f"{strategy} of the answers of {counted} gave {values}, with a confidence{shown}{left}."


def _shown(document: Any, query: FusionQuery) -> Any:
    """What an excluded answer said, kept short, for the table."""
    if not query.fields:
        return document if not isinstance(document, str) else document[:200]
    shown: dict[str, Any] = {}
    for name in query.fields:
        if isinstance(document, dict) and name in document:
            shown[name] = document[name]
    return shown or (str(document)[:200] if not isinstance(document, dict) else None)
