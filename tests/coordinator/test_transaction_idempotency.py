"""Transactions run once: an Idempotency-Key answers a retry with the first transaction, and an analysed arbitrage
opportunity executes at most once, sequentially and under concurrency. Over the real protocol, demo exchanges as
stdio servers; the balances are read from the exchanges themselves."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.db import transaction as db_transaction
from django.utils import timezone
from rest_framework.test import APIClient

from coordinator.models import Operation, OperationKind, Transaction
from fleet import calls as fleet_calls
from registry.models import Server
from tests.coordinator.server_states import wait_status
from tests.exchanges import register_exchange, wait_discovered
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/coordinator/transactions/"


def tool(server: str, name: str, **arguments: Any) -> dict[str, Any]:
    answer = fleet_calls.call_tool_sync(Server.objects.get(name=server), name, arguments, caller="test")
    assert not answer.result.is_error, answer.result.text
    return answer.result.structured_content


def holdings(server: str, asset: str) -> tuple[float, float]:
    """(total, reserved) of one asset on one exchange."""
    balance = tool(server, "get_balances")["balances"][asset]
    return balance["total"], balance["reserved"]


def order(server: str, side: str, quantity: float = 0.01) -> dict[str, Any]:
    return {"server": server, "symbol": "BTC-USD", "side": side, "quantity": quantity}


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client


def post(api: APIClient, body: dict[str, Any], key: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api.post(URL, body, format="json", headers=headers)


def analysed_opportunity(live_fleet, operator_api: APIClient, buy: str, sell: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Two exchanges, the second quoting 0.5 % high, and an analysis that finds buying on one and selling on the
    other worth it."""
    register_exchange(buy)
    register_exchange(sell, profile="beta")
    wait_discovered(live_fleet, buy, sell, tool="reserve_order")
    wait_status(buy, sell)  # an opportunity executes only between online exchanges
    analysis = operator_api.post(
        "/api/coordinator/arbitrage/", {"symbols": ["ETH-USD"], "size": 0.1, "min_profit_bps": 0}, format="json"
    ).json()
    assert analysis["opportunities"], analysis
    best = analysis["opportunities"][0]
    assert (best["buy_on"], best["sell_on"]) == (buy, sell), best
    return analysis


def test_seven_concurrent_executions_of_one_opportunity_commit_exactly_once(live_fleet, operator_api, operator_user):
    analysis = analysed_opportunity(live_fleet, operator_api, "once-buy", "once-sell")
    before = {name: holdings(name, "ETH")[0] for name in ("once-buy", "once-sell")}
    body = {"arbitrage": {"operation_id": analysis["operation_id"], "opportunity": 0}}
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(7)

    def execute(index: int) -> None:
        client = client_for(operator_user)
        try:
            barrier.wait()
            # Half with a key of their own, half without: the opportunity's rule holds whatever the key.
            response = post(client, body, key=f"click-{index}" if index % 2 else None)
            with lock:
                answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=execute, args=(index,)) for index in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(answers) == 7
    committed = [answer for status, answer in answers if status == 200]
    refused = [answer for status, answer in answers if status == 409]
    assert len(committed) == 1 and len(refused) == 6, answers
    winner = committed[0]
    assert winner["state"] == "committed"
    for answer in refused:
        assert answer["code"] == "opportunity_already_executed"
        assert answer["transaction_id"] == winner["id"]
        assert "already executed" in answer["error"]
    # One transaction logged, one transaction operation, and the exchanges moved by one execution's size.
    assert list(Transaction.objects.values_list("pk", flat=True)) == [winner["id"]]
    assert Operation.objects.filter(kind=OperationKind.TRANSACTION).count() == 1
    size = analysis["opportunities"][0]["size"]
    buy_total, buy_reserved = holdings("once-buy", "ETH")
    sell_total, sell_reserved = holdings("once-sell", "ETH")
    assert buy_total == pytest.approx(before["once-buy"] + size)
    assert sell_total == pytest.approx(before["once-sell"] - size)
    assert buy_reserved == sell_reserved == 0


def test_it_refuses_an_opportunity_executed_before_whatever_the_key(live_fleet, operator_api, admin_api):
    analysis = analysed_opportunity(live_fleet, operator_api, "twice-buy", "twice-sell")
    before = holdings("twice-buy", "ETH")[0]
    body = {"arbitrage": {"operation_id": analysis["operation_id"]}}  # the default index: the same opportunity
    first = post(operator_api, body, key=str(uuid.uuid4()))
    assert first.status_code == 200, first.json()
    explicit = {"arbitrage": {"operation_id": analysis["operation_id"], "opportunity": 0}}
    for api, key in ((operator_api, str(uuid.uuid4())), (operator_api, None), (admin_api, None)):
        again = post(api, explicit, key=key)
        assert again.status_code == 409, again.json()
        refusal = again.json()
        assert refusal["code"] == "opportunity_already_executed"
        assert refusal["transaction_id"] == first.json()["id"]
        assert refusal["operation_id"] == first.json()["operation_id"] and refusal["state"] == "committed"
    assert Transaction.objects.count() == 1
    assert holdings("twice-buy", "ETH")[0] == pytest.approx(before + analysis["opportunities"][0]["size"])


def test_an_execution_that_aborted_with_nothing_moved_lets_the_opportunity_be_tried_again(live_fleet, operator_api):
    analysis = analysed_opportunity(live_fleet, operator_api, "retry-buy", "retry-sell")
    # Something else holds nearly all of the seller's ETH: the execution's sell is refused and the whole aborts.
    available = tool("retry-sell", "get_balances")["balances"]["ETH"]["available"]
    blocker = tool("retry-sell", "reserve_order", symbol="ETH-USD", side="sell", quantity=available - 0.01)
    body = {"arbitrage": {"operation_id": analysis["operation_id"], "opportunity": 0}}
    first = post(operator_api, body)
    assert first.status_code == 409 and first.json()["state"] == "aborted", first.json()
    assert holdings("retry-buy", "USD")[1] == 0  # the buy side's reservation was cancelled: nothing moved
    tool("retry-sell", "cancel_order", reservation_id=blocker["reservation_id"])
    second = post(operator_api, body)
    assert second.status_code == 200, second.json()
    assert second.json()["state"] == "committed" and second.json()["id"] != first.json()["id"]
    third = post(operator_api, body)
    assert third.status_code == 409 and third.json()["transaction_id"] == second.json()["id"]


def test_the_same_idempotency_key_answers_the_first_transaction_again(live_fleet, operator_api, admin_api):
    register_exchange("key-a")
    register_exchange("key-b")
    wait_discovered(live_fleet, "key-a", "key-b", tool="reserve_order")
    before = holdings("key-a", "BTC")[0]
    body = {"participants": [order("key-a", "buy"), order("key-b", "sell")], "timeout_seconds": 5}
    key = str(uuid.uuid4())
    first = post(operator_api, body, key=key)
    assert first.status_code == 200, first.json()
    assert first.json()["idempotency_key"] == key and "Idempotent-Replayed" not in first
    # The same request again, by header and then by the body's field (keys in another order, 5 spelt 5.0): answered
    # with the first transaction, not run.
    again = post(operator_api, body, key=key)
    respelt = {"timeout_seconds": 5.0, "idempotency_key": key, "participants": body["participants"]}
    by_field = post(operator_api, respelt)
    for replay in (again, by_field):
        assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
        assert replay.json() == first.json()
    assert Transaction.objects.count() == 1
    assert holdings("key-a", "BTC")[0] == pytest.approx(before + 0.01)
    # A key is the user's own: another user's request under the same key is a request of its own.
    other = post(admin_api, body, key=key)
    assert other.status_code == 200 and other.json()["id"] != first.json()["id"]
    assert holdings("key-a", "BTC")[0] == pytest.approx(before + 0.02)


def test_it_refuses_the_same_key_with_a_different_body(live_fleet, operator_api):
    register_exchange("reuse-a")
    register_exchange("reuse-b")
    wait_discovered(live_fleet, "reuse-a", "reuse-b", tool="reserve_order")
    key = "order-2026-0001"
    first = post(operator_api, {"participants": [order("reuse-a", "buy"), order("reuse-b", "sell")]}, key=key)
    assert first.status_code == 200, first.json()
    before = holdings("reuse-a", "BTC")[0]
    larger = {"participants": [order("reuse-a", "buy", 0.02), order("reuse-b", "sell", 0.02)]}
    other = post(operator_api, larger, key=key)
    assert other.status_code == 422, other.json()
    refusal = other.json()
    assert refusal["code"] == "idempotency_key_reused" and "idempotency_key" in refusal
    assert refusal["transaction_id"] == first.json()["id"]
    assert Transaction.objects.count() == 1 and holdings("reuse-a", "BTC")[0] == pytest.approx(before)


def test_a_retry_while_the_first_is_still_running_answers_in_progress_with_its_id(live_fleet, operator_api):
    register_exchange("slow-a", "--latency-ms", "1500")
    register_exchange("slow-b")
    wait_discovered(live_fleet, "slow-a", "slow-b", tool="reserve_order")
    body = {"participants": [order("slow-a", "buy"), order("slow-b", "sell")], "timeout_seconds": 10}
    key = str(uuid.uuid4())
    results: list = []
    running = threading.Thread(target=lambda: results.append(post(operator_api, body, key=key)))
    running.start()
    try:
        wait_for(lambda: Transaction.objects.filter(idempotency_key=key).exists(), what="the first to be logged")
        tx = Transaction.objects.get(idempotency_key=key)
        assert tx.state == "preparing"  # slow-a takes 1.5 s to reserve
        retry = post(operator_api, body, key=key)
        assert retry.status_code == 409, retry.json()
        assert retry.json()["code"] == "idempotency_key_in_progress"
        assert retry.json()["transaction_id"] == tx.pk and retry["Retry-After"]
    finally:
        running.join(60)
    assert results[0].status_code == 200
    done = post(operator_api, body, key=key)
    assert done.status_code == 200 and done.json()["id"] == tx.pk and done["Idempotent-Replayed"] == "true"
    assert Transaction.objects.count() == 1


def test_it_names_a_bad_idempotency_key(live_fleet, operator_api):
    register_exchange("bad-key-a")
    wait_discovered(live_fleet, "bad-key-a", tool="reserve_order")
    body = {"participants": [order("bad-key-a", "buy")]}
    for key in ("", "has space", "x" * 201, "caf\u00e9"):
        response = post(operator_api, body, key=key)
        assert response.status_code == 400 and "idempotency_key" in response.json(), (key, response.content)
    differ = post(operator_api, {**body, "idempotency_key": "one"}, key="two")
    assert differ.status_code == 400 and "differ" in differ.json()["idempotency_key"][0]
    assert not Transaction.objects.exists()


def test_the_database_refuses_a_second_claim_on_one_opportunity(operator_user):
    """The rule is the database's own, not the API's: a second row claiming the opportunity cannot be written;
    one that let it go (an abort) can."""
    analysis = Operation.objects.create(kind=OperationKind.ARBITRAGE, started_at=timezone.now())

    def claim(holds: bool = True) -> Transaction:
        return Transaction.objects.create(
            created_at=timezone.now(), analysis=analysis, opportunity=0, holds_opportunity=holds
        )

    first = claim()
    with pytest.raises(IntegrityError), db_transaction.atomic():
        claim()
    claim(holds=False)  # an aborted attempt, kept in the log
    first.holds_opportunity = False
    first.save(update_fields=["holds_opportunity"])
    claim()
    assert Transaction.objects.filter(holds_opportunity=True).count() == 1
