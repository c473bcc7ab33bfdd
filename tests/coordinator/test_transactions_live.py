"""Transactions across demo exchanges over the real protocol: commit, abort with nothing left behind, a participant
killed between prepare and commit, a lost confirm reply retried without a double fill, two transactions that cannot
spend the same balance twice, an arbitrage opportunity executed, bad requests."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from coordinator.models import Participant, Transaction
from fleet import calls as fleet_calls
from mcp_client.processes import child_pids
from registry.models import Server
from tests.coordinator.server_states import wait_status
from tests.demo_process import cmdline
from tests.exchanges import register_exchange, wait_discovered
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def exchange(name: str, *extra: str, profile: str = "alpha", stdio: bool = False) -> None:
    register_exchange(name, *extra, profile=profile, stdio=stdio)


def ready(live_fleet, *names: str) -> None:  # type: ignore[no-untyped-def]
    wait_discovered(live_fleet, *names, tool="reserve_order")


def tool(server: str, name: str, **arguments):  # type: ignore[no-untyped-def]
    answer = fleet_calls.call_tool_sync(Server.objects.get(name=server), name, arguments, caller="test")
    assert not answer.result.is_error, answer.result.text
    return answer.result.structured_content


def balances(server: str) -> dict:
    return tool(server, "get_balances")["balances"]


def order(server: str, side: str, quantity: float = 0.01) -> dict:
    return {"server": server, "symbol": "BTC-USD", "side": side, "quantity": quantity}


def post(api, body):  # type: ignore[no-untyped-def]
    return api.post("/api/coordinator/transactions/", body, format="json")


def test_a_transaction_commits_on_every_participant(live_fleet, operator_api):
    exchange("tx-a")
    exchange("tx-b")
    exchange("tx-c")
    ready(live_fleet, "tx-a", "tx-b", "tx-c")
    before = {name: balances(name) for name in ("tx-a", "tx-b", "tx-c")}
    response = post(operator_api, {"participants": [order("tx-a", "buy"), order("tx-b", "sell"), order("tx-c", "buy")]})
    body = response.json()
    assert response.status_code == 200, body
    assert body["state"] == "committed" and body["decision"] == "commit"
    assert [p["state"] for p in body["participants"]] == ["confirmed"] * 3
    for participant in body["participants"]:
        assert [step["phase"] for step in participant["timeline"]] == ["prepare", "confirm"]
        fill = tool(participant["server"], "get_reservation", reservation_id=participant["reservation_id"])
        assert fill["status"] == "confirmed"
    after = {name: balances(name) for name in ("tx-a", "tx-b", "tx-c")}
    assert after["tx-a"]["BTC"]["total"] == pytest.approx(before["tx-a"]["BTC"]["total"] + 0.01)
    assert after["tx-b"]["BTC"]["total"] == pytest.approx(before["tx-b"]["BTC"]["total"] - 0.01)
    assert all(after[name]["USD"]["reserved"] == 0 for name in after)
    stored = operator_api.get(f"/api/coordinator/transactions/{body['id']}/").json()
    assert stored["state"] == "committed"
    operation = operator_api.get(f"/api/coordinator/operations/{body['operation_id']}/").json()
    assert operation["kind"] == "transaction" and operation["state"] == "succeeded"


def test_a_refused_prepare_aborts_the_whole_and_nothing_is_left_reserved(live_fleet, operator_api):
    exchange("ab-a")
    exchange("ab-b")
    ready(live_fleet, "ab-a", "ab-b")
    # ab-b cannot sell 1,000 BTC: its prepare is refused, so ab-a's reservation is cancelled.
    response = post(operator_api, {"participants": [order("ab-a", "buy"), order("ab-b", "sell", 1000)]})
    body = response.json()
    assert response.status_code == 409 and body["state"] == "aborted" and body["decision"] == "abort"
    assert "ab-b" in body["reason"]
    assert [p["state"] for p in body["participants"]] == ["cancelled", "refused"]
    assert balances("ab-a")["USD"]["reserved"] == 0 and balances("ab-b")["BTC"]["reserved"] == 0


def test_a_participant_killed_between_prepare_and_commit_aborts_and_every_other_is_cancelled(live_fleet, operator_api):
    exchange("k-a")
    exchange("k-b")
    exchange("k-doomed", "--latency-ms", "4000", "--seed", "5151", stdio=True)  # a process of its own, to kill
    ready(live_fleet, "k-a", "k-b", "k-doomed")
    results: list = []
    body = {"participants": [order("k-a", "buy"), order("k-b", "buy"), order("k-doomed", "buy")]}
    running = threading.Thread(target=lambda: results.append(post(operator_api, body)))
    running.start()
    wait_for(lambda: Transaction.objects.exists(), what="the transaction to be logged")
    tx = Transaction.objects.get()
    # The fast participants have reserved (asked by the key the coordinator gave them); the slow one is still busy.
    for position, name in enumerate(("k-a", "k-b")):
        key = f"tx{tx.pk}-{position}"
        wait_for(lambda key=key, name=name: _reserved(name, key), what=f"{name} prepared")
    doomed = [pid for pid in child_pids() if b"5151" in cmdline(pid)]
    assert len(doomed) == 1
    os.kill(doomed[0], signal.SIGKILL)
    running.join(90)
    answer = results[0].json()
    assert results[0].status_code == 409, answer
    assert answer["state"] == "aborted"
    states = {p["server"]: p["state"] for p in answer["participants"]}
    assert states["k-a"] == states["k-b"] == "cancelled"
    assert states["k-doomed"] == "cancelled"  # restarted by the supervisor: asked by key, it holds nothing
    assert balances("k-a")["USD"]["reserved"] == 0 and balances("k-b")["USD"]["reserved"] == 0
    wait_for(lambda: _answers("k-doomed"), what="the restarted participant")
    assert balances("k-doomed")["USD"]["reserved"] == 0


def _reserved(server: str, key: str) -> bool:
    answer = fleet_calls.call_tool_sync(
        Server.objects.get(name=server), "get_reservation", {"idempotency_key": key}, caller="test"
    )
    return not answer.result.is_error and answer.result.structured_content["status"] == "reserved"


def _answers(server: str) -> bool:
    try:
        balances(server)
    except Exception:  # noqa: BLE001 - still reconnecting
        return False
    return True


def test_a_lost_confirm_reply_is_retried_without_a_double_fill(live_fleet, operator_api):
    exchange("lossy", "--lose-confirm-replies", "1")
    exchange("steady")
    ready(live_fleet, "lossy", "steady")
    before = balances("lossy")
    response = post(operator_api, {"participants": [order("lossy", "buy", 0.02), order("steady", "sell", 0.02)]})
    body = response.json()
    assert response.status_code == 200, body
    lossy = next(p for p in body["participants"] if p["server"] == "lossy")
    assert [step["phase"] for step in lossy["timeline"]] == ["prepare", "confirm", "confirm"]
    assert "lost reply" in lossy["timeline"][1]["error"] and lossy["timeline"][2]["ok"]
    after = balances("lossy")
    assert after["BTC"]["total"] == pytest.approx(before["BTC"]["total"] + 0.02)  # filled once


def test_two_transactions_cannot_spend_the_same_balance_twice(live_fleet, operator_api, operator_user):
    exchange("shared")
    exchange("other")
    ready(live_fleet, "shared", "other")
    usd = balances("shared")["USD"]["available"]
    price = tool("shared", "get_quote", symbol="BTC-USD")["ask"]
    quantity = round(usd * 0.6 / price, 4)  # each needs 60 % of the USD: both cannot hold it
    body = {"participants": [order("shared", "buy", quantity), order("other", "sell", 0.001)]}
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(operator_user)
        barrier.wait()
        statuses.append(post(client, body).status_code)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200, 409]
    assert balances("shared")["USD"]["reserved"] == 0
    assert balances("shared")["USD"]["total"] > 0
    assert Participant.objects.filter(server="shared", state="confirmed").count() == 1


def test_an_arbitrage_opportunity_is_executed_as_a_transaction(live_fleet, operator_api):
    exchange("ex-alpha")
    exchange("ex-beta", profile="beta")  # quotes 0.5 % high: buy on alpha, sell on beta
    ready(live_fleet, "ex-alpha", "ex-beta")
    wait_status("ex-alpha", "ex-beta")  # an opportunity executes only between online exchanges
    analysis = operator_api.post(
        "/api/coordinator/arbitrage/", {"symbols": ["ETH-USD"], "size": 0.1, "min_profit_bps": 0}, format="json"
    ).json()
    assert analysis["opportunities"], analysis
    best = analysis["opportunities"][0]
    response = post(operator_api, {"arbitrage": {"operation_id": analysis["operation_id"], "opportunity": 0}})
    body = response.json()
    assert response.status_code == 200, body
    sides = {(p["server"], p["order"]["side"]) for p in body["participants"]}
    assert sides == {(best["buy_on"], "buy"), (best["sell_on"], "sell")}
    assert all(p["state"] == "confirmed" for p in body["participants"])


def test_bad_transaction_requests_are_named(live_fleet, operator_api, viewer_api):
    assert post(viewer_api, {"participants": []}).status_code == 403
    assert "participants" in post(operator_api, {}).json()
    assert "participants" in post(operator_api, {"participants": []}).json()
    bad = post(
        operator_api, {"participants": [{"server": "nobody", "symbol": "BTC-USD", "side": "hold", "quantity": -1}]}
    ).json()
    assert {"participants.0.side", "participants.0.quantity"} <= set(bad)
    missing = post(operator_api, {"participants": [order("nobody", "buy")]}).json()
    assert "participants.0.server" in missing
    assert "arbitrage.operation_id" in post(operator_api, {"arbitrage": {"operation_id": 999}}).json()


def test_a_saga_compensates_completed_actions_in_reverse_when_one_fails(live_fleet, operator_api):
    exchange("sg-a")
    exchange("sg-b")
    exchange("sg-c")
    ready(live_fleet, "sg-a", "sg-b", "sg-c")

    def reserve(server: str, quantity: float) -> dict:
        return {
            "server": server,
            "action": {
                "tool": "reserve_order",
                "arguments": {"symbol": "BTC-USD", "side": "sell", "quantity": quantity},
            },
            "compensation": {"tool": "cancel_order", "arguments": {"reservation_id": "$result.reservation_id"}},
        }

    # sg-c cannot sell 1,000 BTC: sg-b's then sg-a's reservations are compensated (cancelled), last first.
    response = post(
        operator_api,
        {"protocol": "saga", "participants": [reserve("sg-a", 0.1), reserve("sg-b", 0.1), reserve("sg-c", 1000)]},
    )
    body = response.json()
    assert response.status_code == 409, body
    assert body["protocol"] == "saga" and body["state"] == "aborted" and "sg-c" in body["reason"]
    assert [p["state"] for p in body["participants"]] == ["cancelled", "cancelled", "refused"]
    compensated_at = [p["timeline"][-1]["started_at"] for p in body["participants"][:2]]
    assert compensated_at[1] < compensated_at[0]  # sg-b compensated before sg-a
    assert balances("sg-a")["BTC"]["reserved"] == 0 and balances("sg-b")["BTC"]["reserved"] == 0

    response = post(operator_api, {"protocol": "saga", "participants": [reserve("sg-a", 0.1), reserve("sg-b", 0.1)]})
    assert response.status_code == 200 and response.json()["state"] == "committed"
    assert balances("sg-a")["BTC"]["reserved"] == pytest.approx(0.1)  # the actions stand
    assert (
        "participants.0.compensation"
        in post(
            operator_api,
            {"protocol": "saga", "participants": [{**reserve("sg-a", 0.1), "compensation": {"tool": "no_such_tool"}}]},
        ).json()
    )
