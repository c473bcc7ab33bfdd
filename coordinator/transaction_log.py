"""The transaction log both protocols write: its first entry (the transaction and its participants, committed before
anything is sent), the record of each step on a participant's timeline, and the log as JSON (API, operations)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction as db_transaction
from django.utils import timezone

from coordinator.models import OperationKind, Participant, Transaction
from coordinator.participant_calls import CallResult
from coordinator.services import operation_start
from coordinator.settlement import fills_of, realised_profit


def create_transaction(
    orders: list[dict[str, Any]],
    *,
    created_by: str,
    parameters: dict[str, Any],
    protocol: str = "two_phase",
    idempotency_key: str | None = None,
    request_digest: str = "",
) -> Transaction:
    """The log's first entry: the transaction and its participants, committed before anything is sent.

    The row carries the request's idempotency key and, for an arbitrage opportunity, the claim on it: the unique
    constraints refuse a second one with IntegrityError, before anything is written or published."""
    spec = parameters.get("arbitrage")
    with db_transaction.atomic():
        tx = Transaction.objects.create(
            protocol=protocol,
            parameters=parameters,
            created_by=created_by[:150],
            created_at=timezone.now(),
            idempotency_key=idempotency_key,
            request_digest=request_digest,
            analysis_id=spec["operation_id"] if spec else None,
            opportunity=spec.get("opportunity", 0) if spec else None,
            holds_opportunity=bool(spec),
        )
        tx.operation = operation_start(kind=OperationKind.TRANSACTION, parameters=parameters, created_by=created_by)
        tx.save(update_fields=["operation"])
        Participant.objects.bulk_create(
            Participant(
                transaction=tx,
                position=position,
                server=order["server"],
                order={key: value for key, value in order.items() if key != "server"},
                idempotency_key=f"{tx.idempotency_prefix}-{position}",
            )
            for position, order in enumerate(orders)
        )
    return tx


def _stamp(moment: datetime | None = None) -> str:
    return (moment or timezone.now()).isoformat()


def phase_step(name: str, started: datetime, outcome: CallResult) -> dict[str, Any]:
    finished = timezone.now()
    return {
        "phase": name,
        "started_at": _stamp(started),
        "finished_at": _stamp(finished),
        "duration_ms": round((finished - started).total_seconds() * 1000.0, 2),
        "ok": outcome.ok,
        "error": outcome.error or None,
    }


def transaction_json(tx: Transaction) -> dict[str, Any]:
    participants = list(tx.participants.all())
    fills = fills_of(participants)
    return {
        "id": tx.pk,
        "protocol": tx.protocol,
        "state": tx.state,
        "decision": tx.decision or None,
        "decided_at": tx.decided_at.isoformat() if tx.decided_at else None,
        "reason": tx.reason or None,
        "created_by": tx.created_by,
        "created_at": tx.created_at.isoformat(),
        "finished_at": tx.finished_at.isoformat() if tx.finished_at else None,
        "operation_id": tx.operation_id,
        "idempotency_key": tx.idempotency_key,
        "analysis_id": tx.analysis_id,
        "opportunity": tx.opportunity,
        "parameters": tx.parameters,
        "fills": fills,
        "realised": realised_profit(fills, legs=len(participants)) if tx.protocol == "two_phase" else None,
        "participants": [
            {
                "server": p.server,
                "order": p.order,
                "idempotency_key": p.idempotency_key,
                "state": p.state,
                "reservation_id": p.reservation_id or None,
                "prepared": p.prepared,
                "outcome": p.outcome,
                "error": p.error or None,
                "timeline": p.timeline,
            }
            for p in participants
        ],
    }
