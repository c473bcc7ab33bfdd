"""A transaction request submitted (the API's one way in): run once per idempotency key, an arbitrage
opportunity executed at most once.

Both rules are kept by the database, not by a read before the write: the transaction's row is inserted with the
request's key and its claim on the opportunity, and the unique constraints on `Transaction` refuse a second insert
however requests interleave, on SQLite and PostgreSQL alike. The read that follows a refused insert only finds
whom to answer with.

- The same key from the same user with the same body (canonical JSON, the key left out) answers the first
  transaction again: its id and its state now, with the status that state answers. While the first is still
  running (preparing, committing or aborting) the retry is refused "in progress" with its id rather than held
  open: a transaction can run for a prepare timeout plus a phase-two deadline, too long to tie a worker to a
  waiting request; the client asks again, or reads `GET /api/coordinator/transactions/<id>/`.
- The same key with another body is refused (the key belongs to the first request).
- An opportunity that may not be executed now is refused before anything is logged (OpportunityNotExecutable: its
  quotes too old, or one of its exchanges not online; see opportunity_checks), after the two rules above, so a
  retry still finds its transaction and an executed opportunity still names its execution.
- An opportunity already executed is refused with the executing transaction's id, whatever the key. An execution
  that aborted moved nothing (every reservation cancelled or never made) and lets the opportunity go, so it may
  be tried again; a committed one keeps it for good, and so does one still running or in doubt (recovery settles
  that one, and lets the opportunity go only if it aborts).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from coordinator.finishing import execute
from coordinator.models import Transaction, TransactionState
from coordinator.opportunity_checks import check_executable
from coordinator.transaction_log import create_transaction
from coordinator.transaction_requests import parse_transaction, request_digest

RUNNING = (TransactionState.PREPARING, TransactionState.COMMITTING, TransactionState.ABORTING)
# A refused insert whose holder is gone when we look (it aborted and let the opportunity go in between) is
# tried again; more than a couple of such races in a row means the refusal was something else.
_INSERT_ATTEMPTS = 3


class RefusalReason(StrEnum):
    IN_PROGRESS = "idempotency_key_in_progress"
    KEY_REUSED = "idempotency_key_reused"
    ALREADY_EXECUTED = "opportunity_already_executed"


class SubmissionRefused(Exception):
    """The request was not run: why, and the transaction that stands in its way."""

    def __init__(self, reason: RefusalReason, transaction: Transaction) -> None:
        super().__init__(f"{reason}: transaction #{transaction.pk}")
        self.reason = reason
        self.transaction = transaction


@dataclass(frozen=True)
class Submitted:
    transaction: Transaction
    replayed: bool  # an earlier request's transaction, answered again: nothing ran this time


def _keyed(created_by: str, key: str) -> Transaction | None:
    return Transaction.objects.filter(created_by=created_by[:150], idempotency_key=key).first()


def _answer_again(earlier: Transaction, digest: str) -> Submitted:
    if earlier.request_digest != digest:
        raise SubmissionRefused(RefusalReason.KEY_REUSED, earlier)
    if earlier.state in RUNNING:
        raise SubmissionRefused(RefusalReason.IN_PROGRESS, earlier)
    return Submitted(earlier, replayed=True)


def _opportunity_holder(parameters: dict[str, Any]) -> Transaction | None:
    spec = parameters.get("arbitrage")
    if not spec:
        return None
    return Transaction.objects.filter(
        analysis_id=spec["operation_id"], opportunity=spec["opportunity"], holds_opportunity=True
    ).first()


def transaction_submit(*, data: Any, created_by: str, idempotency_key: str | None = None) -> Submitted:
    """Run the transaction a request describes, or answer the one it already ran.

    RequestError for a bad request (each field named), SubmissionRefused when it must not run (again), and
    OpportunityNotExecutable for an opportunity that must not run now."""
    digest = request_digest(data)
    if idempotency_key is not None:
        earlier = _keyed(created_by, idempotency_key)
        if earlier is not None:
            return _answer_again(earlier, digest)
    orders, parameters = parse_transaction(data)
    spec = parameters.get("arbitrage")
    if spec:
        holder = _opportunity_holder(parameters)
        if holder is not None:  # said first: "already executed" is the answer, whatever its quotes' age now
            raise SubmissionRefused(RefusalReason.ALREADY_EXECUTED, holder)
        check_executable(
            spec,
            [order["server"] for order in orders],
            max_age_seconds=spec["max_age_seconds"],
            now=timezone.now(),
        )
    protocol = parameters.get("protocol", "two_phase")
    attempt = 1
    while True:
        try:
            tx = create_transaction(
                orders,
                created_by=created_by,
                parameters=parameters,
                protocol=protocol,
                idempotency_key=idempotency_key,
                request_digest=digest,
            )
            break
        except IntegrityError:
            # Another request inserted first: a retry under the same key, or another execution of the opportunity.
            if idempotency_key is not None:
                earlier = _keyed(created_by, idempotency_key)
                if earlier is not None:
                    return _answer_again(earlier, digest)
            holder = _opportunity_holder(parameters)
            if holder is not None:
                raise SubmissionRefused(RefusalReason.ALREADY_EXECUTED, holder) from None
            if attempt >= _INSERT_ATTEMPTS:
                raise
            attempt += 1
    return Submitted(execute(tx), replayed=False)
