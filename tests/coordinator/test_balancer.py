"""The balancer's routing logic on a fake clock, and failover with injected call functions.

Unit tests of the routing decisions only: no MCP server is involved, the `call` functions stand in for
`fleet_calls.call_tool` and answer or raise what each test needs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from coordinator.balancer import Balancer, BalancerPolicy, Candidate, call_with_failover
from mcp_client import (
    Answer,
    CallOutcome,
    ConnectionLost,
    Deadline,
    RequestTimedOut,
    ServerError,
    ServerUnavailable,
    ToolCallResult,
)

TOOL = "get_quote"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def answer(server: str, latency_ms: float, *, is_error: bool = False) -> Answer[ToolCallResult]:
    outcome = CallOutcome(
        server_key=server,
        operation="tools/call",
        target_name=TOOL,
        started_at=datetime.now(UTC),
        latency_ms=latency_ms,
        ok=not is_error,
        error_kind="tool_error" if is_error else None,
    )
    result = ToolCallResult(content=[{"type": "text", "text": server}], structured_content=None, is_error=is_error)
    return Answer(result, outcome)


class FakeFleet:
    """Stands in for fleet_calls.call_tool: per server, a latency to answer with, or an exception to raise."""

    def __init__(self, behaviour: dict[str, float | BaseException], *, delay: float = 0.0) -> None:
        self.behaviour = behaviour
        self.delay = delay
        self.calls: list[dict[str, Any]] = []

    async def __call__(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        deadline: Deadline | None = None,
        correlation_id: str = "",
        caller: str = "",
    ) -> Answer[ToolCallResult]:
        self.calls.append(
            {
                "server": server,
                "tool": tool,
                "arguments": arguments,
                "deadline": deadline,
                "correlation_id": correlation_id,
                "caller": caller,
            }
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        outcome = self.behaviour[server]
        if isinstance(outcome, BaseException):
            raise outcome
        return answer(server, outcome)

    @property
    def servers(self) -> list[str]:
        return [call["server"] for call in self.calls]


def online(*servers: str) -> list[Candidate]:
    return [Candidate(server, "online") for server in servers]


def make_balancer(clock: FakeClock | None = None, **policy: Any) -> Balancer:
    policy.setdefault("seed", 7)
    return Balancer(BalancerPolicy(**policy), clock=clock or FakeClock())


def succeed(balancer: Balancer, server: str, latency_ms: float = 10.0, times: int = 1) -> None:
    for _ in range(times):
        trial = balancer.started(server)
        balancer.finished(server, True, latency_ms, trial=trial)


def fail(balancer: Balancer, server: str, times: int = 1) -> None:
    for _ in range(times):
        trial = balancer.started(server)
        balancer.finished(server, False, None, trial=trial)


def server_stats(balancer: Balancer, server: str) -> dict[str, Any]:
    return balancer.stats()["servers"][server]


def eject(balancer: Balancer, server: str) -> None:
    fail(balancer, server, times=balancer.policy.consecutive_failures_to_eject)
    assert server_stats(balancer, server)["ejected"]


def later() -> Deadline:
    return Deadline.within(30)


# -- scoring ---------------------------------------------------------------------------------------------------------


async def test_it_sends_the_large_majority_of_calls_to_the_fast_replica():
    balancer = make_balancer()
    fleet = FakeFleet({"fast": 5.0, "slow": 60.0})
    for _ in range(200):
        result = await call_with_failover(balancer, online("fast", "slow"), TOOL, {}, deadline=later(), call=fleet)
        assert result.ok
    counts = Counter(fleet.servers)
    assert counts["fast"] >= 190, counts
    assert counts["slow"] >= 1  # it was measured, at least once, before it lost every draw
    assert server_stats(balancer, "fast")["ewma_latency_ms"] == pytest.approx(5.0)


def test_it_keeps_the_latency_as_an_ewma_and_the_error_rate_as_an_ewma_of_failures():
    balancer = make_balancer(ewma_alpha=0.3)
    succeed(balancer, "a", 10.0)
    succeed(balancer, "a", 20.0)
    fail(balancer, "a")
    stats = server_stats(balancer, "a")
    assert stats["ewma_latency_ms"] == pytest.approx(0.3 * 20 + 0.7 * 10)  # the failure did not move it
    assert stats["error_rate"] == pytest.approx(0.3)
    assert (stats["calls"], stats["failures"], stats["in_flight"]) == (3, 1, 0)


def test_calls_in_flight_push_traffic_to_a_slower_idle_replica():
    balancer = make_balancer()
    succeed(balancer, "fast", 5.0)
    succeed(balancer, "slow", 50.0)
    for _ in range(10):
        balancer.started("fast")  # 5 ms * (1 + 10) = 55 > 50
    choice = balancer.choose(online("fast", "slow"))
    assert choice.server == "slow"
    assert choice.reason == "p2c: slow (score 50.0) over fast (score 55.0)"


def test_a_worse_registry_status_loses_at_equal_latency():
    balancer = make_balancer()
    succeed(balancer, "a", 10.0)
    succeed(balancer, "b", 10.0)
    candidates = [Candidate("a", "degraded"), Candidate("b", "online")]
    choices = {balancer.choose(candidates).reason for _ in range(20)}
    assert choices == {"p2c: b (score 10.0) over a (score 20.0)"}


def test_an_unknown_registry_status_is_penalised_like_unknown():
    policy = BalancerPolicy()
    assert policy.status_penalty("something-new") == policy.status_penalties["unknown"]


def test_an_unmeasured_server_scores_like_the_median_of_its_measured_peers():
    balancer = make_balancer()
    succeed(balancer, "a", 10.0)
    succeed(balancer, "b", 30.0)
    choices = [balancer.choose(online("a", "b", "new")) for _ in range(30)]
    new_scores = [choice.score for choice in choices if choice.server == "new"]
    # The median of 10 and 30: it beats b in a draw, so it is tried rather than starved.
    assert new_scores and all(score == pytest.approx(20.0) for score in new_scores)


def test_equal_scores_prefer_the_higher_priority():
    balancer = make_balancer()
    candidates = [Candidate("low", "online", priority=10), Candidate("high", "online", priority=200)]
    assert {balancer.choose(candidates).server for _ in range(20)} == {"high"}


def test_the_failover_order_is_by_score_with_ejected_servers_last():
    balancer = make_balancer()
    for server, latency in {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}.items():
        succeed(balancer, server, latency)
    candidates = online("a", "b", "c", "d")
    balancer.choose(candidates)
    eject(balancer, "b")
    choice = balancer.choose(candidates)
    assert choice.order[-1] == "b"
    assert [s for s in ("a", "c", "d") if s != choice.server] == list(choice.order[:-1])


def test_choosing_among_no_candidates_is_an_error():
    with pytest.raises(ValueError):
        make_balancer().choose([])


def test_a_policy_with_nonsense_values_is_refused():
    with pytest.raises(ValueError):
        BalancerPolicy(ewma_alpha=0)
    with pytest.raises(ValueError):
        BalancerPolicy(base_ejection_seconds=10, max_ejection_seconds=5)


# -- ejection --------------------------------------------------------------------------------------------------------


def test_consecutive_failures_eject_a_server_for_the_base_time():
    clock = FakeClock()
    balancer = make_balancer(clock, consecutive_failures_to_eject=3, base_ejection_seconds=5.0)
    candidates = online("a", "b")
    balancer.choose(candidates)  # the balancer learns that a and b stand in for each other

    fail(balancer, "b", times=2)
    assert not server_stats(balancer, "b")["ejected"]
    fail(balancer, "b")
    stats = server_stats(balancer, "b")
    assert stats["ejected"] and stats["ejections"] == 1
    assert stats["ejected_until_seconds"] == pytest.approx(5.0)

    clock.advance(4.9)
    for _ in range(20):
        choice = balancer.choose(candidates)
        assert (choice.server, choice.kind, choice.reason) == ("a", "only_candidate", "only candidate not ejected")
        assert choice.order == ("b",)
    clock.advance(0.1)
    choice = balancer.choose(candidates)
    assert (choice.server, choice.kind, choice.reason) == ("b", "half_open", "half-open trial after ejection")


def test_a_success_resets_the_failure_streak():
    balancer = make_balancer(consecutive_failures_to_eject=3)
    balancer.choose(online("a", "b"))
    fail(balancer, "b", times=2)
    succeed(balancer, "b")
    fail(balancer, "b", times=2)
    stats = server_stats(balancer, "b")
    assert not stats["ejected"] and stats["consecutive_failures"] == 2


def test_a_second_ejection_lasts_longer_and_the_time_is_capped():
    clock = FakeClock()
    balancer = make_balancer(clock, base_ejection_seconds=5.0, max_ejection_seconds=12.0)
    balancer.choose(online("a", "b"))
    eject(balancer, "b")
    assert server_stats(balancer, "b")["ejected_until_seconds"] == pytest.approx(5.0)

    clock.advance(5.0)
    fail(balancer, "b")  # the half-open trial fails
    stats = server_stats(balancer, "b")
    assert stats["ejected"] and stats["ejections"] == 2
    assert stats["ejected_until_seconds"] == pytest.approx(10.0)

    clock.advance(10.0)
    fail(balancer, "b")
    assert server_stats(balancer, "b")["ejected_until_seconds"] == pytest.approx(12.0)  # 15 s, capped


def test_a_server_ejected_again_soon_after_its_restore_stays_out_longer():
    clock = FakeClock()
    balancer = make_balancer(clock, base_ejection_seconds=5.0)
    balancer.choose(online("a", "b"))
    eject(balancer, "b")
    clock.advance(5.0)
    succeed(balancer, "b")  # the trial succeeds
    assert not server_stats(balancer, "b")["ejected"]

    clock.advance(1.0)
    eject(balancer, "b")
    assert server_stats(balancer, "b")["ejected_until_seconds"] == pytest.approx(10.0)


def test_the_ejection_time_shrinks_back_after_a_healthy_stretch():
    clock = FakeClock()
    balancer = make_balancer(clock, base_ejection_seconds=5.0)
    balancer.choose(online("a", "b"))
    eject(balancer, "b")
    clock.advance(5.0)
    fail(balancer, "b")  # level 2
    clock.advance(10.0)
    succeed(balancer, "b")

    clock.advance(60.0)  # healthy for many base periods: each forgives one level
    eject(balancer, "b")
    stats = server_stats(balancer, "b")
    assert stats["ejected_until_seconds"] == pytest.approx(5.0) and stats["ejections"] == 3


def test_it_never_ejects_more_than_the_max_share_of_the_candidates():
    balancer = make_balancer(max_ejected_share=0.5)
    servers = ("a", "b", "c", "d")
    balancer.choose(online(*servers))
    for server in servers:
        fail(balancer, server, times=3)
    ejected = [s for s in servers if server_stats(balancer, s)["ejected"]]
    assert ejected == ["a", "b"]
    assert balancer.stats()["ejections_refused"] == 2


def test_it_never_ejects_the_last_server_even_with_no_share_limit():
    balancer = make_balancer(max_ejected_share=1.0)
    balancer.choose(online("a", "b"))
    fail(balancer, "a", times=3)
    fail(balancer, "b", times=10)
    assert server_stats(balancer, "a")["ejected"]
    assert not server_stats(balancer, "b")["ejected"]


def test_a_lone_server_is_never_ejected():
    balancer = make_balancer()
    balancer.choose(online("solo"))
    fail(balancer, "solo", times=10)
    assert not server_stats(balancer, "solo")["ejected"]
    assert balancer.choose(online("solo")).kind == "only_candidate"


def test_the_share_holds_in_every_candidate_set_a_server_belongs_to():
    balancer = make_balancer(max_ejected_share=0.5)
    balancer.choose(online("a", "b", "c", "d"))  # one tool: four replicas
    balancer.choose(online("a", "b"))  # another tool: only two
    eject(balancer, "a")
    fail(balancer, "b", times=3)
    assert not server_stats(balancer, "b")["ejected"]  # it would leave the second tool with nobody


def test_with_every_candidate_ejected_it_tries_the_one_back_soonest():
    clock = FakeClock()
    balancer = make_balancer(clock)
    balancer.choose(online("a", "b", "c", "d"))
    eject(balancer, "a")
    clock.advance(1.0)
    eject(balancer, "b")
    choice = balancer.choose(online("b", "a"))  # a tool only these two serve
    assert (choice.server, choice.kind) == ("a", "all_ejected")
    assert choice.reason == "all candidates ejected: trying the one back soonest"
    assert choice.order == ("b",)


# -- half-open trial -------------------------------------------------------------------------------------------------


def test_a_half_open_server_gets_exactly_one_call_while_its_trial_is_in_flight():
    clock = FakeClock()
    balancer = make_balancer(clock)
    candidates = online("a", "b", "c")
    balancer.choose(candidates)
    eject(balancer, "b")
    clock.advance(5.0)

    choice = balancer.choose(candidates)
    assert (choice.server, choice.kind) == ("b", "half_open")
    assert balancer.started("b") is True
    assert not balancer.accepts("b")
    chosen = {balancer.choose(candidates).server for _ in range(50)}
    assert chosen == {"a", "c"}
    assert server_stats(balancer, "b")["trial_in_flight"]


def test_a_successful_trial_restores_the_server():
    clock = FakeClock()
    balancer = make_balancer(clock)
    candidates = online("a", "b")
    balancer.choose(candidates)
    eject(balancer, "b")
    clock.advance(5.0)
    assert balancer.choose(candidates).kind == "half_open"
    trial = balancer.started("b")
    balancer.finished("b", True, 8.0, trial=trial)

    stats = server_stats(balancer, "b")
    assert not stats["ejected"] and not stats["trial_in_flight"] and stats["ejected_until_seconds"] is None
    assert {balancer.choose(candidates).kind for _ in range(10)} == {"p2c"}


def test_a_failed_trial_ejects_the_server_again_for_longer():
    clock = FakeClock()
    balancer = make_balancer(clock, base_ejection_seconds=5.0)
    candidates = online("a", "b")
    balancer.choose(candidates)
    eject(balancer, "b")
    clock.advance(5.0)
    assert balancer.choose(candidates).kind == "half_open"
    trial = balancer.started("b")
    balancer.finished("b", False, None, trial=trial)

    stats = server_stats(balancer, "b")
    assert stats["ejected"] and not stats["trial_in_flight"]
    assert stats["ejected_until_seconds"] == pytest.approx(10.0)
    assert balancer.choose(candidates).server == "a"


def test_calls_already_in_flight_at_the_ejection_do_not_decide_the_trial():
    clock = FakeClock()
    balancer = make_balancer(clock)
    balancer.choose(online("a", "b"))
    old_call = balancer.started("b")  # begun while b was still in the pool
    eject(balancer, "b")
    clock.advance(5.0)
    trial = balancer.started("b")
    assert (old_call, trial) == (False, True)

    balancer.finished("b", True, 10.0, trial=old_call)
    assert server_stats(balancer, "b")["ejected"]  # the old call's success proves nothing about now
    balancer.finished("b", True, 10.0, trial=trial)
    assert not server_stats(balancer, "b")["ejected"]


def test_an_abandoned_trial_lets_the_next_call_be_the_trial():
    clock = FakeClock()
    balancer = make_balancer(clock)
    balancer.choose(online("a", "b"))
    eject(balancer, "b")
    clock.advance(5.0)
    trial = balancer.started("b")
    balancer.abandoned("b", trial=trial)
    stats = server_stats(balancer, "b")
    assert stats["ejected"] and not stats["trial_in_flight"] and stats["in_flight"] == 0
    assert balancer.choose(online("a", "b")).kind == "half_open"


# -- failover --------------------------------------------------------------------------------------------------------


async def test_it_fails_over_down_the_order_and_records_every_attempt():
    balancer = make_balancer()
    fleet = FakeFleet(
        {
            "a": ServerUnavailable("a", "reconnecting"),
            "b": ConnectionLost("b", "tools/call", "stdout closed"),
            "c": 12.0,
        }
    )
    # c is degraded, so it scores worst and comes last: a and b are tried first, in either order.
    candidates = [Candidate("a", "online"), Candidate("b", "online"), Candidate("c", "degraded")]
    deadline = later()
    result = await call_with_failover(
        balancer, candidates, TOOL, {"symbol": "EURUSD"}, deadline=deadline, correlation_id="req-1", call=fleet
    )

    assert result.ok and result.server == "c" and result.error == ""
    assert result.answer is not None and result.answer.result.text == "c"
    assert [(a.server, a.ok) for a in result.attempts][-1] == ("c", True)
    assert {a.server for a in result.attempts[:2]} == {"a", "b"}
    assert not any(a.ok for a in result.attempts[:2])
    assert "reconnecting" in next(a.error for a in result.attempts if a.server == "a")
    assert result.attempts[-1].latency_ms == 12.0
    assert fleet.servers == [a.server for a in result.attempts]
    assert {(c["deadline"], c["correlation_id"], c["caller"], c["tool"]) for c in fleet.calls} == {
        (deadline, "req-1", "coordinator", TOOL)
    }
    assert balancer.stats()["decisions"]["failover"] == 2


async def test_a_tool_error_fails_over_and_the_last_tool_answer_is_kept_when_all_say_no():
    balancer = make_balancer()

    async def tool_says_no(server: str, tool: str, arguments: dict[str, Any] | None, **_: Any) -> Answer:
        return answer(server, 3.0, is_error=True)

    result = await call_with_failover(balancer, online("a", "b"), TOOL, {}, deadline=later(), call=tool_says_no)
    assert not result.ok and result.answer is not None and result.answer.result.is_error
    assert [attempt.ok for attempt in result.attempts] == [False, False]
    assert result.error.startswith("all 2 attempt(s) failed; last error: the tool answered an error")
    assert balancer.stats()["decisions"]["failover"] == 1

    async def only_a_says_no(server: str, tool: str, arguments: dict[str, Any] | None, **_: Any) -> Answer:
        return answer(server, 3.0, is_error=server == "a")

    for _ in range(5):
        result = await call_with_failover(balancer, online("a", "b"), TOOL, {}, deadline=later(), call=only_a_says_no)
        assert result.ok and result.server == "b" and not result.answer.result.is_error


async def test_it_reports_the_last_error_when_every_candidate_fails():
    balancer = make_balancer()
    fleet = FakeFleet(
        {"a": ServerError("a", -32603, "internal error"), "b": RequestTimedOut("b", "tools/call", 5.0, TOOL)}
    )
    result = await call_with_failover(balancer, online("a", "b"), TOOL, {}, deadline=later(), call=fleet)
    assert result.answer is None and result.server is None
    assert sorted(a.server for a in result.attempts) == ["a", "b"]
    assert result.error.startswith("all 2 attempt(s) failed; last error: ")
    assert result.error.endswith(result.attempts[-1].error)


async def test_failover_skips_a_server_whose_trial_is_in_flight():
    clock = FakeClock()
    balancer = make_balancer(clock)
    candidates = online("a", "b")
    balancer.choose(candidates)
    eject(balancer, "b")
    clock.advance(5.0)
    balancer.started("b")  # another task's trial
    fleet = FakeFleet({"a": ServerUnavailable("a", "connecting"), "b": 1.0})
    result = await call_with_failover(balancer, candidates, TOOL, {}, deadline=later(), call=fleet)
    assert fleet.servers == ["a"]
    assert not result.ok


async def test_an_expired_deadline_calls_nobody():
    balancer = make_balancer()
    fleet = FakeFleet({"a": 1.0, "b": 1.0})
    expired = Deadline(time.monotonic() - 1)
    result = await call_with_failover(balancer, online("a", "b"), TOOL, {}, deadline=expired, call=fleet)
    assert fleet.calls == [] and result.attempts == []
    assert result.error == "deadline exhausted before any attempt"


async def test_it_stops_failing_over_when_the_deadline_runs_out():
    balancer = make_balancer()
    fleet = FakeFleet({"a": RequestTimedOut("a", "tools/call", 0.05, TOOL), "b": 1.0}, delay=0.1)
    candidates = [Candidate("a", "online"), Candidate("b", "offline")]  # a is called first
    result = await call_with_failover(balancer, candidates, TOOL, {}, deadline=Deadline.within(0.05), call=fleet)
    assert fleet.servers == ["a"]
    assert not result.ok
    assert result.error.startswith("deadline exhausted after 1 attempt(s); last error: ")


async def test_the_idempotency_key_is_passed_to_the_tool_unless_the_caller_set_one():
    balancer = make_balancer()
    fleet = FakeFleet({"a": ServerUnavailable("a", "connecting"), "b": 1.0})
    arguments = {"symbol": "EURUSD"}
    await call_with_failover(
        balancer, online("a", "b"), TOOL, arguments, deadline=later(), idempotency_key="order-42", call=fleet
    )
    assert [c["arguments"] for c in fleet.calls] == [{"symbol": "EURUSD", "idempotency_key": "order-42"}] * len(
        fleet.calls
    )
    assert arguments == {"symbol": "EURUSD"}  # the caller's dict is left alone

    fleet.calls.clear()
    await call_with_failover(
        balancer, online("b"), TOOL, {"idempotency_key": "mine"}, deadline=later(), idempotency_key="x", call=fleet
    )
    assert fleet.calls[0]["arguments"] == {"idempotency_key": "mine"}

    fleet.calls.clear()
    await call_with_failover(balancer, online("b"), TOOL, {"symbol": "EURUSD"}, deadline=later(), call=fleet)
    assert fleet.calls[0]["arguments"] == {"symbol": "EURUSD"}


async def test_an_exception_that_is_not_the_servers_fault_propagates_and_frees_the_slot():
    clock = FakeClock()
    balancer = make_balancer(clock)
    balancer.choose(online("a", "b"))
    eject(balancer, "b")
    clock.advance(5.0)

    async def broken(*_: Any, **__: Any) -> Answer:
        raise TypeError("arguments could not be serialised")

    with pytest.raises(TypeError):
        await call_with_failover(balancer, online("a", "b"), TOOL, {}, deadline=later(), call=broken)
    stats = server_stats(balancer, "b")  # it was b's half-open trial
    assert stats["in_flight"] == 0 and not stats["trial_in_flight"]
    assert stats["ejected"] and stats["failures"] == 3  # only the failures that ejected it: no verdict on this call


async def test_no_candidates_is_reported_not_raised():
    result = await call_with_failover(make_balancer(), [], TOOL, {}, deadline=later(), call=FakeFleet({}))
    assert result.answer is None and result.error == "no candidates"


# -- maintenance -----------------------------------------------------------------------------------------------------


async def test_a_server_in_maintenance_gets_no_call_even_as_the_last_failover_and_is_reported_excluded():
    balancer = make_balancer()
    # The fastest replica, measured so: by score alone it would win every draw.
    succeed(balancer, "gamma", latency_ms=1.0, times=5)
    fleet = FakeFleet({"alpha": ServerUnavailable("alpha", "reconnecting"), "beta": 20.0, "gamma": 1.0})
    candidates = [Candidate("alpha", "online"), Candidate("gamma", "maintenance"), Candidate("beta", "degraded")]
    for _ in range(20):
        result = await call_with_failover(balancer, candidates, TOOL, {}, deadline=later(), call=fleet)
        assert result.ok and result.server == "beta"
        assert [e.to_json() for e in result.excluded] == [{"server": "gamma", "reason": "maintenance"}]
    assert "gamma" not in fleet.servers


async def test_every_candidate_in_maintenance_calls_nobody_and_says_why():
    fleet = FakeFleet({"a": 1.0, "b": 1.0})
    candidates = [Candidate("a", "maintenance"), Candidate("b", "maintenance"), Candidate("a", "maintenance")]
    result = await call_with_failover(make_balancer(), candidates, TOOL, {}, deadline=later(), call=fleet)
    assert result.answer is None and not result.attempts and fleet.calls == []
    assert result.error == "no candidate in service: every one is in maintenance (a, b)"
    assert [(e.server, e.reason) for e in result.excluded] == [("a", "maintenance"), ("b", "maintenance")]


async def test_no_server_is_excluded_when_none_is_in_maintenance():
    fleet = FakeFleet({"a": 1.0})
    result = await call_with_failover(make_balancer(), online("a"), TOOL, {}, deadline=later(), call=fleet)
    assert result.ok and result.excluded == []


# -- stats -----------------------------------------------------------------------------------------------------------


async def test_stats_count_every_decision_by_kind_and_are_json_ready():
    clock = FakeClock()
    balancer = make_balancer(clock)
    balancer.choose(online("a", "b", "c", "d"))  # p2c
    balancer.choose(online("solo"))  # only_candidate
    eject(balancer, "a")
    eject(balancer, "b")
    balancer.choose(online("a", "b"))  # all_ejected
    clock.advance(5.0)
    balancer.choose(online("a", "c"))  # half_open
    fleet = FakeFleet({"c": ServerUnavailable("c", "connecting"), "d": 2.0})
    await call_with_failover(balancer, online("c", "d"), TOOL, {}, deadline=later(), call=fleet)  # p2c (+ failover?)

    stats = balancer.stats()
    failovers = 1 if fleet.servers[0] == "c" else 0
    assert stats["decisions"] == {
        "p2c": 2,
        "only_candidate": 1,
        "half_open": 1,
        "all_ejected": 1,
        "failover": failovers,
    }
    assert set(stats["servers"]["a"]) == {
        "ewma_latency_ms",
        "in_flight",
        "error_rate",
        "consecutive_failures",
        "ejected",
        "ejected_until_seconds",
        "trial_in_flight",
        "ejections",
        "calls",
        "failures",
    }
    assert stats["servers"]["a"]["ejected_until_seconds"] == 0.0  # its time is over; the trial has not run yet
    assert json.loads(json.dumps(stats)) == stats
