"""Transactions across servers: two-phase (reserve on every participant, a decision written durably, then confirm
on all or cancel on all), with a log in the database that lets the next start finish what a crash interrupted.

Participants follow the demo exchanges' convention: `reserve_order(..., idempotency_key)` holds funds and answers a
reservation; `confirm_order(reservation_id)` executes it and is safe to retry (the same fill again);
`cancel_order(reservation_id)` releases it; `get_reservation(idempotency_key=...)` finds a reservation whose reply
never arrived. A prepare that fails, is refused or times out aborts the whole; phase two retries within its
deadline (a lost confirm reply is retried and answers the same fill, so nothing is filled twice). Two transactions
can never spend the same balance twice: the participant holds the funds of the first reservation and refuses the
second.

Database work happens on the calling thread; the calls run on the fleet loop (one `run` per phase).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db import transaction as db_transaction
from django.utils import timezone

from coordinator.models import Participant, ParticipantState, Transaction, TransactionState
from coordinator.participant_calls import CallResult, call_participant
from coordinator.services import operation_finish
from coordinator.transaction_log import create_transaction, phase_step, transaction_json
from fleet import calls as fleet_calls
from mcp_client import Deadline

logger = logging.getLogger(__name__)

CRASH_ENV = "COORDINATOR_CRASH_AFTER"  # tests only: "decision" stops the process right after the decision
# An answer that says "nothing is held under this key": the reserve never arrived (or the participant lost it).
NOT_HELD = ("unknown reservation", "unknown idempotency key", "no reservation")


def save_participants(participants: list[Participant], fields: list[str]) -> None:
    """One prepared UPDATE for every participant (a transaction writes all of them at each phase): a save() each
    cost more CPU than the participants' calls themselves."""
    if not participants:
        return
    quote = connection.ops.quote_name
    columns = [Participant._meta.get_field(name) for name in fields]
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    statement = f"UPDATE {quote(Participant._meta.db_table)} SET {assignments} WHERE {quote('id')} = %s"
    rows = [
        [*(column.get_db_prep_save(getattr(p, column.attname), connection) for column in columns), p.pk]
        for p in participants
    ]
    with connection.cursor() as cursor:
        cursor.executemany(statement, rows)


# --- phase one ------------------------------------------------------------------------------------------------


async def _prepare_all(participants: list[Participant], seconds: float) -> list[tuple[CallResult, datetime]]:
    async def prepare(participant: Participant) -> tuple[CallResult, datetime]:
        started = timezone.now()
        arguments = {**participant.order, "idempotency_key": participant.idempotency_key}
        arguments = {key: value for key, value in arguments.items() if value is not None}
        return await call_participant(
            participant.server, "reserve_order", arguments, seconds, participant.idempotency_key
        ), started

    return list(await asyncio.gather(*(prepare(p) for p in participants)))


def prepare_and_decide(tx: Transaction, *, timeout_seconds: float) -> Transaction:
    participants = list(tx.participants.all())
    outcomes = fleet_calls.run_on_fleet(
        _prepare_all(participants, timeout_seconds),
        deadline=Deadline.within(timeout_seconds),
        what=f"the prepare phase of transaction {tx.pk}",
    )
    reasons: list[str] = []
    with db_transaction.atomic():
        for participant, (outcome, started) in zip(participants, outcomes, strict=True):
            participant.timeline = [*participant.timeline, phase_step("prepare", started, outcome)]
            if outcome.ok:
                participant.state = ParticipantState.PREPARED
                participant.prepared = outcome.result
                participant.reservation_id = str((outcome.result or {}).get("reservation_id", ""))
            else:
                participant.state = ParticipantState.UNKNOWN if outcome.unsure else ParticipantState.REFUSED
                participant.error = outcome.error
                reasons.append(f"{participant.server}: {outcome.error}")
        save_participants(participants, ["timeline", "state", "prepared", "reservation_id", "error"])
        # The decision, durably, before anything of phase two is sent: recovery follows it.
        commit = not reasons
        tx.decision = "commit" if commit else "abort"
        tx.decided_at = timezone.now()
        tx.state = TransactionState.COMMITTING if commit else TransactionState.ABORTING
        tx.reason = "" if commit else "a prepare failed: " + "; ".join(reasons)
        tx.save(update_fields=["decision", "decided_at", "state", "reason"])
    if os.environ.get(CRASH_ENV) == "decision":
        logger.warning("coordinator: stopping right after the decision of transaction #%s (%s)", tx.pk, CRASH_ENV)
        os._exit(70)
    return tx


# --- phase two ------------------------------------------------------------------------------------------------


async def _resolve_unknown(participant: Participant, seconds: float) -> tuple[str, CallResult]:
    """For a prepare whose answer never came: the reservation it made, if any ("" when nothing is held)."""
    outcome = await call_participant(
        participant.server,
        "get_reservation",
        {"idempotency_key": participant.idempotency_key},
        seconds,
        participant.idempotency_key,
    )
    if outcome.ok:
        return str((outcome.result or {}).get("reservation_id", "")), outcome
    if any(marker in outcome.error.lower() for marker in NOT_HELD):
        return "", CallResult(True, result={"held": False}, error="")
    return "?", outcome  # could not tell yet


async def _finish_one(participant: Participant, commit: bool, deadline: Deadline) -> tuple[str, dict[str, Any], list]:
    """Drive one participant to the decision, retrying within the deadline. (state, outcome, timeline steps)."""
    steps: list[dict[str, Any]] = []
    delay = 0.2
    reservation_id = participant.reservation_id
    while True:
        started = timezone.now()
        seconds = max(0.5, deadline.cap(settings.COORDINATOR_CALL_TIMEOUT_SECONDS))
        if participant.state in (ParticipantState.UNKNOWN, ParticipantState.PENDING) and not reservation_id:
            found, outcome = await _resolve_unknown(participant, seconds)
            steps.append(phase_step("lookup", started, outcome))
            if found == "":
                return ParticipantState.CANCELLED if not commit else ParticipantState.REFUSED, {"held": False}, steps
            if found != "?":
                reservation_id = found
                continue
        elif commit:
            outcome = await call_participant(
                participant.server,
                "confirm_order",
                {"reservation_id": reservation_id},
                seconds,
                participant.idempotency_key,
            )
            steps.append(phase_step("confirm", started, outcome))
            if outcome.ok:
                return ParticipantState.CONFIRMED, {**(outcome.result or {}), "reservation_id": reservation_id}, steps
        else:
            outcome = await call_participant(
                participant.server,
                "cancel_order",
                {"reservation_id": reservation_id},
                seconds,
                participant.idempotency_key,
            )
            steps.append(phase_step("cancel", started, outcome))
            if outcome.ok:
                return ParticipantState.CANCELLED, {**(outcome.result or {}), "reservation_id": reservation_id}, steps
        if deadline.remaining() <= delay:
            return participant.state, {"reservation_id": reservation_id, "last_error": steps[-1]["error"]}, steps
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


async def _finish_all(
    participants: list[Participant], commit: bool, deadline: Deadline
) -> list[tuple[str, dict, list]]:
    return list(await asyncio.gather(*(_finish_one(p, commit, deadline) for p in participants)))


def finish_transaction(tx: Transaction, *, deadline_seconds: float | None = None) -> Transaction:
    """Phase two by the recorded decision (no decision: abort). Idempotent: run again by recovery."""
    seconds = deadline_seconds or settings.COORDINATOR_PHASE_TWO_SECONDS
    if not tx.decision:
        with db_transaction.atomic():
            tx.decision, tx.decided_at = "abort", timezone.now()
            tx.state, tx.reason = TransactionState.ABORTING, "no decision was recorded before a restart: presumed abort"
            tx.save(update_fields=["decision", "decided_at", "state", "reason"])
    commit = tx.decision == "commit"
    done = {ParticipantState.CONFIRMED, ParticipantState.CANCELLED, ParticipantState.REFUSED}
    todo = [p for p in tx.participants.all() if p.state not in done]
    deadline = Deadline.within(seconds)
    results = (
        fleet_calls.run_on_fleet(
            _finish_all(todo, commit, deadline), deadline=deadline, what=f"phase two of transaction {tx.pk}"
        )
        if todo
        else []
    )
    open_ones: list[str] = []
    with db_transaction.atomic():
        for participant, (state, outcome, steps) in zip(todo, results, strict=True):
            participant.state = state
            participant.timeline = [*participant.timeline, *steps]
            if state in done:
                participant.outcome = outcome
                participant.reservation_id = participant.reservation_id or outcome.get("reservation_id", "")
            else:
                participant.error = outcome.get("last_error") or participant.error
                open_ones.append(f"{participant.server}: {participant.error}")
        save_participants(todo, ["state", "timeline", "outcome", "reservation_id", "error"])
        if open_ones:
            tx.state = TransactionState.IN_DOUBT
            tx.reason = f"{tx.decision} not finished on: " + "; ".join(open_ones)
        else:
            tx.state = TransactionState.COMMITTED if commit else TransactionState.ABORTED
            tx.finished_at = timezone.now()
        if tx.state == TransactionState.ABORTED:
            # Every reservation was cancelled or never made: nothing moved, so the opportunity may be tried again.
            # A commit, or an abort still in doubt, keeps it.
            tx.holds_opportunity = False
        tx.save(update_fields=["state", "reason", "finished_at", "holds_opportunity"])
    if tx.operation_id and tx.state != TransactionState.IN_DOUBT:
        operation_finish(
            tx.operation,
            steps=[step for p in tx.participants.all() for step in ({"name": p.server, **s} for s in p.timeline)],
            result=transaction_json(tx),
            error="" if tx.state == TransactionState.COMMITTED else f"aborted: {tx.reason}",
        )
    return tx


def execute_transaction(tx: Transaction) -> Transaction:
    """Both phases of a logged transaction."""
    timeout = float(tx.parameters.get("timeout_seconds") or settings.COORDINATOR_CALL_TIMEOUT_SECONDS)
    prepare_and_decide(tx, timeout_seconds=timeout)
    return finish_transaction(tx)


def run_transaction(orders: list[dict[str, Any]], *, created_by: str, parameters: Mapping[str, Any]) -> Transaction:
    return execute_transaction(create_transaction(orders, created_by=created_by, parameters=dict(parameters)))
