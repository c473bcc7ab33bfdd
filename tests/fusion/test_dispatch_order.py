"""The fan-out sends the source expected to be slowest first (its latency last time), unknown sources before known."""

from __future__ import annotations

from fusion.fanout import LatencyHints, Reply
from fusion.sources import SourcePlan


def plan(server: str) -> SourcePlan:
    return SourcePlan(
        server=server,
        status="online",
        priority=0,
        trust=1.0,
        output_schema=None,
        request_timeout_seconds=5.0,
        server_id=1,
    )


def test_the_slowest_source_last_time_is_asked_first_and_a_new_one_before_all():
    hints = LatencyHints()
    plans = [plan("fast"), plan("slow"), plan("middle")]
    hints.learn(
        [
            Reply("fast", "answered", None, 10.0),
            Reply("slow", "answered", None, 30.0),
            Reply("middle", "answered", None, 20.0),
            Reply("broken", "failed", None, None),  # no latency: nothing learnt
        ]
    )
    assert [plans[i].server for i in hints.dispatch_order(plans)] == ["slow", "middle", "fast"]
    with_new = [*plans, plan("new")]
    assert [with_new[i].server for i in hints.dispatch_order(with_new)] == ["new", "slow", "middle", "fast"]
    hints.learn([Reply("fast", "answered", None, 50.0)])  # it got slow: it goes first now
    assert plans[hints.dispatch_order(plans)[0]].server == "fast"
