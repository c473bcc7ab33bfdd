"""The one way a logged transaction is run or finished, whatever its protocol: the API's submissions, start-up
recovery and the admin's "finish now" all come here, and only here is a transaction's recorded protocol read to pick
the two-phase or the saga code. (The admin once finished sagas as two-phase transactions: a saga's completed actions
count as "done" to phase two, so nothing was compensated.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from coordinator.models import Transaction, TransactionState
from coordinator.sagas import execute_saga, finish_saga
from coordinator.transactions import execute_transaction, finish_transaction

logger = logging.getLogger(__name__)

SAGA = "saga"
UNFINISHED = (
    TransactionState.PREPARING,
    TransactionState.COMMITTING,
    TransactionState.ABORTING,
    TransactionState.IN_DOUBT,
)


def execute(tx: Transaction) -> Transaction:
    """Run a freshly logged transaction to its end: both phases, or the saga's actions (compensated on a failure)."""
    return execute_saga(tx) if tx.protocol == SAGA else execute_transaction(tx)


def finish(tx: Transaction, *, deadline_seconds: float | None = None) -> Transaction:
    """Finish a transaction by what its log recorded: a two-phase one by its decision (none: presumed abort), a saga
    by committing when every action completed and compensating the completed ones, last first, otherwise.
    Idempotent: what is already confirmed, cancelled or compensated is not done again."""
    finisher = finish_saga if tx.protocol == SAGA else finish_transaction
    return finisher(tx, deadline_seconds=deadline_seconds)


def finish_all(transactions: Iterable[Transaction], *, deadline_seconds: float | None = None) -> list[Transaction]:
    """Finish the unfinished ones among `transactions`, oldest first, all within `deadline_seconds` (at least 5 s
    each, so a late one is still tried)."""
    finished: list[Transaction] = []
    started = time.monotonic()
    for tx in transactions:
        if tx.state not in UNFINISHED:
            continue
        remaining = None if deadline_seconds is None else max(5.0, deadline_seconds - (time.monotonic() - started))
        logger.info("coordinator: finishing transaction #%s (%s, decision %r)", tx.pk, tx.state, tx.decision)
        finished.append(finish(tx, deadline_seconds=remaining))
    return finished


def recover_transactions(*, deadline_seconds: float = 60.0) -> list[Transaction]:
    """Finish every transaction a crash (or an unreachable participant) left open: confirm what was decided,
    cancel or compensate what was not. Retries until `deadline_seconds` pass (sessions are still connecting at
    start)."""
    return finish_all(
        Transaction.objects.filter(state__in=UNFINISHED).order_by("id"), deadline_seconds=deadline_seconds
    )
