"""Balanced calls over the real protocol: the balancer prefers the fast replica and ejects the broken one; a
replica that dies mid-call fails over to another within the caller's deadline."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

import pytest

from coordinator import balanced_calls
from coordinator.models import Operation
from mcp_client.processes import child_pids
from tests.demo_process import cmdline
from tests.exchanges import register_exchange, wait_discovered
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_balancer():
    """Each test its own balancer (the process keeps one)."""
    balanced_calls._balancer = None
    yield
    balanced_calls._balancer = None


def replica(name: str, *extra: str, stdio: bool = False) -> None:
    register_exchange(name, *extra, server_type="replica", stdio=stdio)


def ready(live_fleet, *names: str) -> None:  # type: ignore[no-untyped-def]
    wait_discovered(live_fleet, *names)


def call(api, **extra):  # type: ignore[no-untyped-def]
    body = {"tool": "get_quote", "arguments": {"symbol": "BTC-USD"}, "server_type": "replica", **extra}
    return api.post("/api/coordinator/call/", body, format="json")


def test_the_balancer_prefers_the_fast_replica_and_ejects_the_broken_one(live_fleet, operator_api):
    replica("fast", "--latency-ms", "5")
    # Far slower than the fast one plus what a loaded machine adds to each call (at 150 ms, the fast replica's
    # measured latency under parallel test workers came close enough that the in-flight weighting sent it too few).
    replica("slow", "--latency-ms", "500")
    # Answers its liveness probes (so the registry calls it online) but fails every tool call.
    replica("broken", "--error-rate", "1")
    ready(live_fleet, "fast", "slow", "broken")
    served: Counter[str] = Counter()
    request = balanced_calls.parse_call(
        {"tool": "get_quote", "arguments": {"symbol": "BTC-USD"}, "server_type": "replica"}
    )

    def ask() -> None:
        answer = balanced_calls.balanced_call(request, created_by="test")
        assert answer["error"] is None, answer
        served[answer["server"]] += 1

    # Rounds of five at once: calls in flight weigh on a replica's score, so the broken one gets its chances.
    for _ in range(8):
        threads = [threading.Thread(target=ask) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sum(served.values()) == 40
    assert served["fast"] > served["slow"] and served["broken"] == 0
    assert served["fast"] >= 25
    stats = operator_api.get("/api/coordinator/routing/").json()
    # Ejected after its consecutive failures (maybe back on trial by now: an ejection lasts seconds).
    assert stats["servers"]["broken"]["ejections"] >= 1 and stats["servers"]["broken"]["failures"] >= 3
    assert stats["servers"]["fast"]["ewma_latency_ms"] < stats["servers"]["slow"]["ewma_latency_ms"]
    assert sum(stats["decisions"].values()) >= 40
    assert Operation.objects.filter(kind="call", state="succeeded").count() >= 40


def test_a_replica_that_dies_mid_call_fails_over_within_the_deadline(live_fleet, operator_api):
    from registry.models import Server

    replica("doomed", "--latency-ms", "3000", "--seed", "4242", stdio=True)  # a process of its own, to kill
    replica("spare", "--latency-ms", "5")
    ready(live_fleet, "doomed", "spare")
    # The spare looks worse to the balancer (degraded), so the first attempt goes to the doomed replica.
    Server.objects.filter(name="spare").update(status="degraded")
    results: list = []
    asking = threading.Thread(target=lambda: results.append(call(operator_api, timeout_seconds=20)))
    asking.start()
    wait_for(lambda: routing_in_flight("doomed"), what="the call in flight on the doomed replica")
    doomed = [pid for pid in child_pids() if b"4242" in cmdline(pid)]
    assert len(doomed) == 1
    os.kill(doomed[0], signal.SIGKILL)
    asking.join(30)
    answer = results[0].json()
    assert results[0].status_code == 200, answer
    assert answer["server"] == "spare"
    assert [attempt["server"] for attempt in answer["attempts"]] == ["doomed", "spare"]
    assert "connection lost" in answer["attempts"][0]["error"].lower()
    assert answer["result"]["structured_content"]["symbol"] == "BTC-USD"
    stored = Operation.objects.get(pk=answer["operation_id"])
    assert [step["state"] for step in stored.steps] == ["failed", "succeeded"]


def test_an_idempotency_key_makes_a_retried_reserve_act_once(live_fleet, operator_api):
    replica("ledger-1")
    ready(live_fleet, "ledger-1")
    body = {
        "tool": "reserve_order",
        "arguments": {"symbol": "BTC-USD", "side": "buy", "quantity": 0.01},
        "servers": ["ledger-1"],
        "idempotency_key": "order-7",
    }
    first = operator_api.post("/api/coordinator/call/", body, format="json").json()
    again = operator_api.post("/api/coordinator/call/", body, format="json").json()
    reservation = first["result"]["structured_content"]
    assert again["result"]["structured_content"]["reservation_id"] == reservation["reservation_id"]
    balances = operator_api.post(
        "/api/coordinator/call/", {"tool": "get_balances", "servers": ["ledger-1"]}, format="json"
    ).json()["result"]["structured_content"]["balances"]
    assert balances["USD"]["reserved"] == pytest.approx(reservation["reserved_amount"])  # held once, not twice


def test_bad_calls_are_answered_with_clear_errors(live_fleet, operator_api, viewer_api):
    assert call(viewer_api).status_code == 403
    response = call(operator_api)
    assert response.status_code == 400 and "No candidate server" in response.json()["tool"][0]
    assert "timeout_seconds" in call(operator_api, timeout_seconds=-1).json()
    assert "arguments" in call(operator_api, arguments=[1]).json()


def routing_in_flight(server: str) -> bool:
    stats = balanced_calls.routing_stats()["servers"].get(server)
    return bool(stats and stats["in_flight"])
