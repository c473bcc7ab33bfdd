"""Arbitrage analysis over the real protocol: demo exchanges asked at once, every pair checked by hand from the
quotes they returned; five analyses at once; bad requests answered with clear errors."""

from __future__ import annotations

import threading

import pytest

from coordinator.models import Operation
from tests.exchanges import register_exchange, wait_discovered
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 0.001  # inside every exchange's best level: each side fills at the best bid or ask


def exchange(name: str, profile: str, *extra: str) -> None:
    register_exchange(name, *extra, profile=profile)


def ready(live_fleet, *names: str) -> None:  # type: ignore[no-untyped-def]
    wait_discovered(live_fleet, *names, tool="get_order_book")


def by_hand(quotes: list[dict], size: float, slippage_bps: float) -> dict[tuple[str, str, str], float]:
    """Net profit of every ordered pair, from the quotes alone: buy at A's ask, sell at B's bid, both fees, the
    slippage buffer on both notionals."""
    expected = {}
    for buy in quotes:
        for sell in quotes:
            if buy["server"] == sell["server"] or buy["symbol"] != sell["symbol"]:
                continue
            cost, income = buy["ask"] * size, sell["bid"] * size
            fees = cost * buy["taker_fee"] + income * sell["taker_fee"]
            slippage = (cost + income) * slippage_bps / 10_000
            expected[(buy["symbol"], buy["server"], sell["server"])] = income - cost - fees - slippage
    return expected


def test_five_analyses_at_once_match_the_arithmetic_done_by_hand(live_fleet, operator_api, operator_user):
    exchange("arb-alpha", "alpha")
    exchange("arb-beta", "beta")  # quotes 0.5 % high: selling there pays
    exchange("arb-gamma", "gamma", "--latency-ms", "20")
    ready(live_fleet, "arb-alpha", "arb-beta", "arb-gamma")
    body = {"symbols": ["BTC-USD", "ETH-USD"], "size": SIZE, "min_profit_bps": 0, "slippage_bps": 1.5}
    answers: list[tuple[int, dict]] = []
    barrier = threading.Barrier(5)

    def analyse() -> None:
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(operator_user)
        barrier.wait()
        response = client.post("/api/coordinator/arbitrage/", body, format="json")
        answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=analyse) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in answers] == [200] * 5, answers
    for _, report in answers:
        assert report["state"] == "succeeded" and set(report["servers"]) == {"arb-alpha", "arb-beta", "arb-gamma"}
        assert len(report["quotes"]) == 6 and not report["failures"]
        for quote in report["quotes"]:
            assert {"server", "bid", "ask", "bid_size", "ask_size", "quoted_at"} <= set(quote)
        expected = by_hand(report["quotes"], SIZE, 1.5)
        assert len(report["pairs"]) == len(expected) == 12
        for pair in report["pairs"]:
            key = (pair["symbol"], pair["buy_on"], pair["sell_on"])
            assert pair["net_profit"] == pytest.approx(expected[key], abs=1e-6), key
            assert pair["net_bps"] == pytest.approx(expected[key] / (pair["buy_price"] * SIZE) * 10_000, abs=1e-3)
        opportunities = report["opportunities"]
        assert opportunities == sorted(opportunities, key=lambda o: -o["net_bps"])
        assert {(o["symbol"], o["buy_on"], o["sell_on"]) for o in opportunities} == {
            key for key, net in expected.items() if net >= 0
        }
        # Beta's 0.5 % bias against 0.1 % fees on each side: buying elsewhere and selling on beta pays.
        assert any(o["sell_on"] == "arb-beta" for o in opportunities)
        for o in opportunities:
            assert set(o) >= {
                "symbol",
                "buy_on",
                "sell_on",
                "buy_price",
                "sell_price",
                "buy_fee",
                "sell_fee",
                "net_profit",
                "net_bps",
            }
    assert Operation.objects.filter(kind="arbitrage", state="succeeded").count() == 5
    stored = operator_api.get(f"/api/coordinator/operations/{answers[0][1]['operation_id']}/").json()
    assert stored["state"] == "succeeded" and {s["state"] for s in stored["steps"]} == {"succeeded"}
    assert stored["result"]["opportunities"] == answers[0][1]["opportunities"]
    from django.test import Client

    browser = Client()
    browser.force_login(operator_user)
    page = browser.get(f"/coordinator/operations/{answers[0][1]['operation_id']}/")
    assert page.status_code == 200 and b"quote-chart" in page.content


def test_an_exchange_that_is_down_is_reported_and_the_others_still_analysed(live_fleet, operator_api):
    exchange("up-1", "alpha")
    exchange("up-2", "beta")
    exchange("soon-down", "alpha", "--outage", "4:3600")
    ready(live_fleet, "up-1", "up-2", "soon-down")
    wait_for(
        lambda: operator_api.post(
            "/api/coordinator/arbitrage/", {"symbols": ["BTC-USD"], "size": SIZE}, format="json"
        ).json()["failures"],
        what="the outage to show",
    )
    report = Operation.objects.filter(kind="arbitrage").order_by("-id").first().result
    assert [f["server"] for f in report["failures"]] == ["soon-down"] and "outage" in report["failures"][0]["error"]
    assert {view["server"] for view in report["views"]} == {"up-1", "up-2"}


def test_bad_requests_are_answered_with_clear_errors(live_fleet, operator_api, viewer_api):
    def post(body, api=operator_api):  # type: ignore[no-untyped-def]
        return api.post("/api/coordinator/arbitrage/", body, format="json")

    response = post({"symbols": ["BTC-USD"], "size": 1})
    assert response.status_code == 400 and "No candidate server" in response.json()["servers"][0]
    assert post({"symbols": ["BTC-USD"], "size": 1}, viewer_api).status_code == 403
    assert post({"symbols": ["BTC-USD"], "size": -1}).json()["size"] == ["Must be between 0 and 1e+09."]
    assert "symbols" in post({"symbols": [], "size": 1}).json()
    assert "symbols" in post({"symbols": ["btc usd"], "size": 1}).json()
    assert "servers" in post({"symbols": ["BTC-USD"], "size": 1, "servers": ["nobody"]}).json()
    assert "surprise" in post({"symbols": ["BTC-USD"], "size": 1, "surprise": True}).json()

    exchange("bad-1", "alpha")
    exchange("bad-2", "alpha")
    ready(live_fleet, "bad-1", "bad-2")
    response = post({"symbols": ["DOGE-USD"], "size": 1})
    assert response.status_code == 400, response.json()
    assert "unknown symbol: no exchange quotes DOGE-USD" in response.json()["symbols"][0]
    assert Operation.objects.get(pk=int(response.json()["operation_id"][0])).state == "failed"
    response = post({"symbols": ["BTC-USD"], "size": 1, "servers": ["bad-1"]})
    assert response.status_code == 400 and "at least two" in response.json()["servers"][0]
