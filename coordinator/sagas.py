"""Sagas: for participants that offer an action and a compensating action instead of reserve/confirm/cancel.

The actions run one after the other, each logged as it completes; when one fails, the decision to abort is written
and the completed actions are compensated in reverse order (a compensation is retried until its deadline: it must
be safe to repeat). A compensation's arguments may name the action's result: `"$result.reservation_id"`.
Recovery after a crash compensates what completed, unless every action had completed (then it commits).
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from django.db import transaction as db_transaction
from django.utils import timezone

from coordinator.models import Participant, ParticipantState, Transaction, TransactionState
from coordinator.participant_calls import CallResult, call_participant
from coordinator.services import operation_finish
from coordinator.transaction_log import create_transaction, phase_step, transaction_json
from fleet import calls as fleet_calls
from mcp_client import Deadline

RESULT_PREFIX = "$result."


def with_result(arguments: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    """The compensation's arguments with `$result.<field>` replaced by the action's result."""
    filled: dict[str, Any] = {}
    for key, value in arguments.items():
        if isinstance(value, str) and value.startswith(RESULT_PREFIX):
            filled[key] = (result or {}).get(value[len(RESULT_PREFIX) :])
        else:
            filled[key] = value
    return filled


async def _act(participant: Participant, seconds: float) -> CallResult:
    action = participant.order["action"]
    return await call_participant(
        participant.server, action["tool"], dict(action.get("arguments") or {}), seconds, participant.idempotency_key
    )


async def _compensate(participant: Participant, deadline: Deadline) -> tuple[bool, list[dict[str, Any]]]:
    compensation = participant.order["compensation"]
    arguments = with_result(dict(compensation.get("arguments") or {}), participant.outcome)
    steps: list[dict[str, Any]] = []
    delay = 0.2
    while True:
        started = timezone.now()
        outcome = await call_participant(
            participant.server,
            compensation["tool"],
            arguments,
            max(0.5, deadline.cap(settings.COORDINATOR_CALL_TIMEOUT_SECONDS)),
            participant.idempotency_key,
        )
        steps.append(phase_step("compensate", started, outcome))
        if outcome.ok:
            return True, steps
        if deadline.remaining() <= delay:
            return False, steps
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def run_saga(steps: list[dict[str, Any]], *, created_by: str, parameters: dict[str, Any]) -> Transaction:
    return execute_saga(create_transaction(steps, created_by=created_by, parameters=parameters, protocol="saga"))


def execute_saga(tx: Transaction) -> Transaction:
    """The actions of a logged saga, one after the other, then its end (compensating on a failure)."""
    timeout = float(tx.parameters.get("timeout_seconds") or settings.COORDINATOR_CALL_TIMEOUT_SECONDS)
    failure = ""
    for participant in tx.participants.all():
        started = timezone.now()
        outcome = fleet_calls.run_on_fleet(
            _act(participant, timeout),
            deadline=Deadline.within(timeout),
            what=f"the action on {participant.server} of saga {tx.pk}",
        )
        participant.timeline = [*participant.timeline, phase_step("action", started, outcome)]
        if outcome.ok:
            participant.state, participant.outcome = ParticipantState.CONFIRMED, outcome.result
        else:
            # Unsure (a timeout): it may have acted, so it is compensated too; a refusal did nothing.
            participant.state = ParticipantState.UNKNOWN if outcome.unsure else ParticipantState.REFUSED
            participant.error = outcome.error
            failure = f"{participant.server}: {outcome.error}"
        participant.save(update_fields=["timeline", "state", "outcome", "error"])
        if failure:
            break
    with db_transaction.atomic():
        tx.decision, tx.decided_at = ("abort" if failure else "commit"), timezone.now()
        tx.state = TransactionState.ABORTING if failure else TransactionState.COMMITTING
        tx.reason = f"an action failed: {failure}" if failure else ""
        tx.save(update_fields=["decision", "decided_at", "state", "reason"])
    return finish_saga(tx)


def finish_saga(tx: Transaction, *, deadline_seconds: float | None = None) -> Transaction:
    """Commit when every action completed; otherwise compensate the completed ones, last first."""
    participants = list(tx.participants.all())
    if tx.decision != "commit" or any(p.state != ParticipantState.CONFIRMED for p in participants):
        if tx.decision != "abort":
            tx.decision, tx.decided_at = "abort", tx.decided_at or timezone.now()
            tx.reason = tx.reason or "not every action completed before a restart: compensating"
        to_undo = [
            p for p in reversed(participants) if p.state in (ParticipantState.CONFIRMED, ParticipantState.UNKNOWN)
        ]
        deadline = Deadline.within(deadline_seconds or settings.COORDINATOR_PHASE_TWO_SECONDS)
        open_ones: list[str] = []
        for participant in to_undo:  # one at a time, in reverse: a saga's compensations are ordered
            done, steps = fleet_calls.run_on_fleet(
                _compensate(participant, deadline),
                deadline=deadline,
                what=f"the compensation on {participant.server} of saga {tx.pk}",
            )
            participant.timeline = [*participant.timeline, *steps]
            if done:
                participant.state = ParticipantState.CANCELLED
            else:
                open_ones.append(f"{participant.server}: {steps[-1]['error']}")
            participant.save(update_fields=["timeline", "state"])
        tx.state = TransactionState.IN_DOUBT if open_ones else TransactionState.ABORTED
        if open_ones:
            tx.reason = "compensation not finished on: " + "; ".join(open_ones)
    else:
        tx.state = TransactionState.COMMITTED
    if tx.state != TransactionState.IN_DOUBT:
        tx.finished_at = timezone.now()
    tx.save(update_fields=["decision", "decided_at", "state", "reason", "finished_at"])
    if tx.operation_id and tx.state != TransactionState.IN_DOUBT:
        operation_finish(
            tx.operation,
            steps=[{"name": p.server, **step} for p in tx.participants.all() for step in p.timeline],
            result=transaction_json(tx),
            error="" if tx.state == TransactionState.COMMITTED else f"aborted: {tx.reason}",
        )
    return tx
