"""The admin's "finish now" goes through the one finisher: a saga left in doubt is finished as a saga (its completed
action compensated on the real exchange), not as a two-phase transaction (which counts a completed action as done
and would mark the saga aborted with the reservation still held)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from coordinator.models import Participant, ParticipantState, Transaction, TransactionState
from coordinator.transaction_log import create_transaction
from fleet import calls as fleet_calls
from registry.models import Server
from tests.exchanges import discovered_exchange

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/coordinator/transaction/"


def tool(server: str, name: str, **arguments):  # type: ignore[no-untyped-def]
    answer = fleet_calls.call_tool_sync(Server.objects.get(name=server), name, arguments, caller="test")
    assert not answer.result.is_error, answer.result.text
    return answer.result.structured_content


def reserved_btc(server: str) -> float:
    return tool(server, "get_balances")["balances"]["BTC"]["reserved"]


def saga_in_doubt(server: str) -> Transaction:
    """A saga whose action completed (0.1 BTC reserved on `server`), decided to abort, whose compensation could not
    finish before its deadline: the state `finish_saga` leaves behind when a participant stays unreachable."""
    step = {
        "server": server,
        "action": {"tool": "reserve_order", "arguments": {"symbol": "BTC-USD", "side": "sell", "quantity": 0.1}},
        "compensation": {"tool": "cancel_order", "arguments": {"reservation_id": "$result.reservation_id"}},
    }
    tx = create_transaction([step], created_by="test", parameters={"protocol": "saga"}, protocol="saga")
    action = step["action"]
    reservation = tool(server, action["tool"], **action["arguments"])
    Participant.objects.filter(transaction=tx).update(state=ParticipantState.CONFIRMED, outcome=reservation)
    Transaction.objects.filter(pk=tx.pk).update(
        decision="abort",
        state=TransactionState.IN_DOUBT,
        reason=f"compensation not finished on: {server}: connection lost",
    )
    return Transaction.objects.get(pk=tx.pk)


def test_finish_now_compensates_a_saga_left_in_doubt(admin_user: User):
    discovered_exchange("admin-saga")
    tx = saga_in_doubt("admin-saga")
    assert reserved_btc("admin-saga") == pytest.approx(0.1)

    client = Client()
    client.force_login(admin_user)
    response = client.post(CHANGELIST, {"action": "finish_now", "_selected_action": [tx.pk]})
    assert response.status_code == 302, response.content[:500]

    tx.refresh_from_db()
    participant = tx.participants.get()
    assert tx.state == TransactionState.ABORTED and tx.finished_at is not None
    assert participant.state == ParticipantState.CANCELLED
    assert [step["phase"] for step in participant.timeline] == ["compensate"]
    assert reserved_btc("admin-saga") == 0


def test_finish_now_leaves_finished_transactions_alone(admin_user: User):
    discovered_exchange("admin-done")
    tx = saga_in_doubt("admin-done")
    Transaction.objects.filter(pk=tx.pk).update(state=TransactionState.ABORTED)

    client = Client()
    client.force_login(admin_user)
    response = client.post(CHANGELIST, {"action": "finish_now", "_selected_action": [tx.pk]})
    assert response.status_code == 302

    assert tx.participants.get().state == ParticipantState.CONFIRMED  # nothing was compensated
    assert reserved_btc("admin-done") == pytest.approx(0.1)
