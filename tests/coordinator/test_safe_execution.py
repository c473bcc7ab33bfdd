"""Safe actions in the coordinator: an analysed opportunity is executed only from fresh quotes and only while both of
its exchanges are online (409 with a reason otherwise, nothing logged or sent); servers in maintenance (the status
health sets while a window is open) are left out of arbitrage analyses and balanced calls and reported as excluded.
Over the real protocol with demo exchanges where the MCP behaviour is the point; the status rules on rows alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from coordinator.models import Operation, OperationKind, Transaction
from fleet import calls as fleet_calls
from registry.models import Capability, CapabilityKind, CapabilitySnapshot, Server, ServerStatus
from tests.coordinator.server_states import open_maintenance, wait_status
from tests.exchanges import register_exchange, wait_discovered

URL = "/api/coordinator/transactions/"


def tool(server: str, name: str, **arguments: Any) -> dict[str, Any]:
    answer = fleet_calls.call_tool_sync(Server.objects.get(name=server), name, arguments, caller="test")
    assert not answer.result.is_error, answer.result.text
    return answer.result.structured_content


def reserved(server: str) -> dict[str, float]:
    return {asset: b["reserved"] for asset, b in tool(server, "get_balances")["balances"].items()}


def analyse(api, **body: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = api.post(
        "/api/coordinator/arbitrage/",
        {"symbols": ["ETH-USD"], "size": 0.1, "min_profit_bps": 0, **body},
        format="json",
    )
    assert response.status_code == 200, response.json()
    return response.json()


def age_quotes(operation_id: int, seconds: float) -> None:
    """The analysis as if it had been run `seconds` ago: its quotes' times moved back."""
    operation = Operation.objects.get(pk=operation_id)
    for view in operation.result["views"]:
        view["quoted_at"] = (timezone.now() - timedelta(seconds=seconds)).isoformat()
    operation.save(update_fields=["result"])


# -- over the real protocol ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_stale_opportunity_is_refused_then_a_fresh_one_executes_and_reports_its_fills(live_fleet, operator_api):
    register_exchange("stale-buy")
    register_exchange("stale-sell", profile="beta")  # quotes 0.5 % high: buy on stale-buy, sell here
    wait_discovered(live_fleet, "stale-buy", "stale-sell", tool="reserve_order")
    wait_status("stale-buy", "stale-sell")
    analysis = analyse(operator_api)
    best = analysis["opportunities"][0]
    assert (best["buy_on"], best["sell_on"]) == ("stale-buy", "stale-sell")
    age_quotes(analysis["operation_id"], 76)  # the tester's report: 76 s old
    body = {"arbitrage": {"operation_id": analysis["operation_id"], "opportunity": 0}}

    refused = operator_api.post(URL, body, format="json")
    assert refused.status_code == 409, refused.json()
    answer = refused.json()
    assert answer["code"] == "opportunity_not_executable" and answer["reason"] == "stale"
    assert answer["max_age_seconds"] == 30.0 and 75 <= answer["age_seconds"] <= 90
    assert "76 s old" in answer["error"] and "Run the analysis again" in answer["error"]
    assert answer["transaction_id"] is None and answer["analysis_id"] == analysis["operation_id"]
    # A tighter or looser limit is the request's to give; bad ones are named.
    tight = operator_api.post(URL, {"arbitrage": {**body["arbitrage"], "max_age_seconds": 60}}, format="json")
    assert tight.status_code == 409 and tight.json()["max_age_seconds"] == 60
    for bad in (0, -1, "soon", 1e9):
        named = operator_api.post(URL, {"arbitrage": {**body["arbitrage"], "max_age_seconds": bad}}, format="json")
        assert named.status_code == 400 and "arbitrage.max_age_seconds" in named.json(), (bad, named.json())
    # Nothing was logged, nothing reserved.
    assert not Transaction.objects.exists()
    assert Operation.objects.filter(kind=OperationKind.TRANSACTION).count() == 0
    assert set(reserved("stale-buy").values()) == set(reserved("stale-sell").values()) == {0}

    loose = operator_api.post(URL, {"arbitrage": {**body["arbitrage"], "max_age_seconds": 600}}, format="json")
    tx = loose.json()
    assert loose.status_code == 200 and tx["state"] == "committed", tx
    # The transaction says what it came from and what it did: each leg's fill and the profit realised.
    assert tx["analysis_id"] == analysis["operation_id"] and tx["opportunity"] == 0
    spec = tx["parameters"]["arbitrage"]
    assert spec["expected_net_profit"] == best["net_profit"] and spec["buy_on"] == "stale-buy"
    fills = {fill["side"]: fill for fill in tx["fills"]}
    assert set(fills) == {"buy", "sell"} and fills["buy"]["server"] == "stale-buy"
    for fill in fills.values():
        assert fill["quantity"] == pytest.approx(0.1) and fill["price"] > 0 and fill["fee_asset"] == "USD"
        assert fill["notional"] == pytest.approx(fill["price"] * fill["quantity"])
    realised = tx["realised"]
    gross = fills["sell"]["notional"] - fills["buy"]["notional"]
    assert realised["currency"] == "USD" and realised["gross_profit"] == pytest.approx(gross)
    assert realised["fees"] == pytest.approx(fills["buy"]["fee"] + fills["sell"]["fee"])
    assert realised["net_profit"] == pytest.approx(gross - realised["fees"])
    assert realised["net_profit"] > 0  # beta quotes 0.5 % high, far more than both fees


@pytest.mark.django_db(transaction=True)
def test_maintenance_keeps_a_server_out_of_analyses_calls_and_executions(live_fleet, operator_api):
    for name, profile in (("mt-alpha", "alpha"), ("mt-beta", "beta"), ("mt-gamma", "gamma")):
        register_exchange(name, profile=profile)
    wait_discovered(live_fleet, "mt-alpha", "mt-beta", "mt-gamma", tool="reserve_order")
    wait_status("mt-alpha", "mt-beta", "mt-gamma")
    before = analyse(operator_api)  # all three in service: the best sells on beta
    assert before["opportunities"][0]["sell_on"] == "mt-beta"

    open_maintenance("mt-beta")
    wait_status("mt-beta", status=ServerStatus.MAINTENANCE)

    # The analysis made before the window cannot be executed now: beta is in maintenance.
    refused = operator_api.post(URL, {"arbitrage": {"operation_id": before["operation_id"]}}, format="json")
    assert refused.status_code == 409, refused.json()
    answer = refused.json()
    assert answer["reason"] == "server_not_online" and answer["servers"] == {"mt-beta": "maintenance"}
    assert "mt-beta is maintenance" in answer["error"] and "exchange upgrade" in answer["error"]
    assert not Transaction.objects.exists()

    # A new analysis leaves beta out and says so; no quote is asked of it, no pair priced with it.
    after = analyse(operator_api, symbols=["ETH-USD", "BTC-USD"])
    assert after["servers"] == ["mt-alpha", "mt-gamma"]
    assert [e for e in after["excluded"] if e["server"] == "mt-beta"] == [
        {"server": "mt-beta", "symbol": "ETH-USD", "reason": "maintenance"},
        {"server": "mt-beta", "symbol": "BTC-USD", "reason": "maintenance"},
    ]
    assert all("mt-beta" not in (p["buy_on"], p["sell_on"]) for p in after["pairs"])
    steps = Operation.objects.get(pk=after["operation_id"]).steps
    assert not [step for step in steps if "mt-beta" in step["name"]]
    assert Operation.objects.get(pk=after["operation_id"]).parameters["in_maintenance"] == ["mt-beta"]
    # Named explicitly it is still left out; with it out, one exchange is not an arbitrage.
    lonely = operator_api.post(
        "/api/coordinator/arbitrage/",
        {"symbols": ["ETH-USD"], "size": 0.1, "servers": ["mt-alpha", "mt-beta"]},
        format="json",
    )
    assert lonely.status_code == 400
    assert lonely.json()["servers"] == [
        "An arbitrage needs at least two exchanges not in maintenance (mt-beta in maintenance)."
    ]

    # Balanced calls never go to it, and say so; with every candidate in maintenance, nobody is called: 503.
    call = {"tool": "get_quote", "arguments": {"symbol": "ETH-USD"}, "servers": ["mt-beta", "mt-gamma"]}
    for _ in range(6):
        routed = operator_api.post("/api/coordinator/call/", call, format="json")
        assert routed.status_code == 200, routed.json()
        assert routed.json()["server"] == "mt-gamma"
        assert routed.json()["excluded"] == [{"server": "mt-beta", "reason": "maintenance"}]
    resting = operator_api.post("/api/coordinator/call/", {**call, "servers": ["mt-beta"]}, format="json")
    assert resting.status_code == 503, resting.json()
    assert resting.json()["attempts"] == [] and "maintenance" in resting.json()["error"]


# -- the status rules, on rows ---------------------------------------------------------------------------------------


def exchange_row(name: str, status: str, reason: str = "") -> Server:
    server = Server.objects.create(
        name=name, transport="http", url=f"http://127.0.0.1:9/{name}", status=status, status_reason=reason
    )
    tools = ("reserve_order", "confirm_order", "cancel_order")
    snapshot = CapabilitySnapshot.objects.create(
        server=server,
        discovered_at=timezone.now(),
        last_confirmed_at=timezone.now(),
        tools=[{"name": name} for name in tools],
        content_hash=name,
    )
    for tool_name in tools:
        Capability.objects.create(
            server=server, snapshot=snapshot, kind=CapabilityKind.TOOL, name=tool_name, identifier=tool_name
        )
    return server


def stored_analysis(buy_on: str, sell_on: str, *, age_seconds: float = 1.0) -> Operation:
    quoted = (timezone.now() - timedelta(seconds=age_seconds)).isoformat()
    opportunity = {
        "symbol": "BTC-USD",
        "buy_on": buy_on,
        "sell_on": sell_on,
        "buy_price": 100.0,
        "sell_price": 101.0,
        "size": 1.0,
        "net_profit": 0.5,
        "net_bps": 50.0,
    }
    views = [{"server": name, "symbol": "BTC-USD", "quoted_at": quoted} for name in (buy_on, sell_on)]
    return Operation.objects.create(
        kind=OperationKind.ARBITRAGE,
        started_at=timezone.now(),
        result={"opportunities": [opportunity], "views": views, "evaluated_at": quoted},
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status",
    [
        ServerStatus.MAINTENANCE,
        ServerStatus.OFFLINE,
        ServerStatus.DEGRADED,
        ServerStatus.PENDING,
        ServerStatus.UNHEALTHY,
        ServerStatus.UNKNOWN,
    ],
)
def test_only_online_exchanges_execute_every_other_status_is_refused_by_name(status, operator_api):
    exchange_row("row-buy", ServerStatus.ONLINE)
    exchange_row("row-sell", status, reason="what health said")
    analysis = stored_analysis("row-buy", "row-sell")
    response = operator_api.post(URL, {"arbitrage": {"operation_id": analysis.pk}}, format="json")
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["code"] == "opportunity_not_executable" and body["reason"] == "server_not_online"
    assert body["servers"] == {"row-sell": status}
    assert f"row-sell is {status} (what health said)" in body["error"]
    assert {"transaction_id", "operation_id", "state"} <= set(body)
    assert not Transaction.objects.exists()


@pytest.mark.django_db
def test_a_server_refusal_comes_before_staleness_and_both_sides_are_named(operator_api):
    exchange_row("two-buy", ServerStatus.OFFLINE)
    exchange_row("two-sell", ServerStatus.MAINTENANCE)
    analysis = stored_analysis("two-buy", "two-sell", age_seconds=500)
    body = operator_api.post(URL, {"arbitrage": {"operation_id": analysis.pk}}, format="json").json()
    assert body["reason"] == "server_not_online"
    assert body["servers"] == {"two-buy": "offline", "two-sell": "maintenance"}


@pytest.mark.django_db
def test_the_default_age_limit_is_a_setting(operator_api, settings):
    exchange_row("set-buy", ServerStatus.ONLINE)
    exchange_row("set-sell", ServerStatus.ONLINE)
    analysis = stored_analysis("set-buy", "set-sell", age_seconds=8)
    settings.COORDINATOR_EXECUTE_MAX_AGE_SECONDS = 5
    body = operator_api.post(URL, {"arbitrage": {"operation_id": analysis.pk}}, format="json").json()
    assert body["reason"] == "stale" and body["max_age_seconds"] == 5 and body["age_seconds"] >= 8


@pytest.mark.django_db
def test_an_executed_opportunity_is_named_as_such_even_once_its_quotes_are_stale(operator_api, operator_user):
    exchange_row("done-buy", ServerStatus.ONLINE)
    exchange_row("done-sell", ServerStatus.ONLINE)
    analysis = stored_analysis("done-buy", "done-sell", age_seconds=500)
    executed = Transaction.objects.create(
        created_at=timezone.now(), analysis=analysis, opportunity=0, holds_opportunity=True, state="committed"
    )
    response = operator_api.post(URL, {"arbitrage": {"operation_id": analysis.pk}}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "opportunity_already_executed" and body["reason"] == "already_executed"
    assert body["transaction_id"] == executed.pk


@pytest.mark.django_db
def test_a_viewer_cannot_execute(viewer_api):
    exchange_row("view-buy", ServerStatus.ONLINE)
    exchange_row("view-sell", ServerStatus.ONLINE)
    analysis = stored_analysis("view-buy", "view-sell")
    assert viewer_api.post(URL, {"arbitrage": {"operation_id": analysis.pk}}, format="json").status_code == 403
