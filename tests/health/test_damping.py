"""Status with damping, check by check (pure logic)."""

from __future__ import annotations

from health.damping import CheckVerdict, DampedStatus, DampingPolicy
from registry.models import ServerStatus

POLICY = DampingPolicy(retries=2, recover_after=2, latency_target_ms=100)
GOOD = CheckVerdict(reachable=True, latency_ms=10, detail="probe 10 ms")
DEAD = CheckVerdict(reachable=False, error="connection refused")
WRONG = CheckVerdict(reachable=True, latency_ms=10, expectation_ok=False, error="get_quote: bid is 0")


def run(damped: DampedStatus, verdicts: list[CheckVerdict]) -> list[str]:
    return [damped.after_check(verdict, POLICY)[0] for verdict in verdicts]


def test_a_server_goes_down_only_after_its_retry_budget_and_comes_back_after_good_checks():
    damped = DampedStatus(status=ServerStatus.ONLINE)
    assert run(damped, [DEAD, DEAD, DEAD, DEAD]) == ["pending", "pending", "offline", "offline"]
    assert "3 checks in a row failed" in damped.reason or damped.reason.startswith("down")
    assert run(damped, [GOOD, GOOD, GOOD]) == ["offline", "online", "online"]
    assert damped.reason == "healthy: checks pass"


def test_one_lost_check_is_no_outage_and_a_flapping_server_does_not_flip():
    damped = DampedStatus(status=ServerStatus.ONLINE)
    assert run(damped, [DEAD, GOOD]) == ["pending", "online"]
    statuses = run(damped, [DEAD, GOOD, DEAD, DEAD, GOOD, DEAD, GOOD] * 5)
    assert ServerStatus.OFFLINE not in statuses


def test_failing_expectations_make_a_reachable_server_unhealthy_after_the_budget():
    damped = DampedStatus(status=ServerStatus.ONLINE)
    assert run(damped, [WRONG, WRONG, WRONG]) == ["pending", "pending", "unhealthy"]
    assert "bid is 0" in damped.reason


def test_slowness_is_judged_on_the_median_of_recent_checks():
    damped = DampedStatus(status=ServerStatus.ONLINE)
    around_target = [CheckVerdict(reachable=True, latency_ms=ms) for ms in (90, 130, 85, 95, 140, 92, 150, 94)]
    assert set(run(damped, around_target)) == {"online"}
    slow = [CheckVerdict(reachable=True, latency_ms=ms) for ms in (180, 170, 160, 190, 175)]
    assert run(damped, slow)[-1] == "degraded"
    assert damped.reason == "slow: the median check is over the 100 ms target"


def test_a_session_that_ends_is_down_at_once_and_a_new_one_still_needs_good_checks():
    damped = DampedStatus(status=ServerStatus.ONLINE)
    assert damped.session_down(POLICY, "stdio process exited")[0] == "offline"
    assert damped.session_up(POLICY, "connected")[0] == "offline"  # 1 of 2 good signs
    assert "recovering" in damped.reason
    assert damped.after_check(GOOD, POLICY)[0] == "online"
    fresh = DampedStatus()
    assert fresh.session_up(POLICY, "connected (protocol 2026-07-28)") == ("online", "connected (protocol 2026-07-28)")


def test_a_failed_discovery_does_not_lift_a_down_server_to_degraded():
    damped = DampedStatus(status=ServerStatus.OFFLINE, reason="down: not answering")
    assert damped.observed(ServerStatus.DEGRADED, "listing failed") == ("offline", "down: not answering")
    up = DampedStatus(status=ServerStatus.ONLINE)
    assert up.observed(ServerStatus.DEGRADED, "listing failed") == ("degraded", "listing failed")


def test_a_failed_discovery_does_not_interrupt_a_server_failing_its_checks():
    # Seen with health deciding everything: a server in an outage fails its probe (pending), then a retried
    # discovery; taking the discovery's degraded would flap pending -> degraded -> pending.
    failing = DampedStatus(status=ServerStatus.PENDING, reason="not answering (1 of 3 failed checks before down)")
    assert failing.observed(ServerStatus.DEGRADED, "listing failed")[0] == "pending"


def test_real_calls_that_fail_often_make_a_server_that_passes_its_checks_degraded():
    damped = DampedStatus(status=ServerStatus.ONLINE)
    for failed in (True, False, False, False):  # too few calls to judge
        damped.note_call(failed)
    assert run(damped, [GOOD]) == ["online"]
    damped.note_call(True)  # 2 of 5 failed
    assert run(damped, [GOOD]) == ["degraded"] and damped.reason.startswith("partly failing")
    for _ in range(20):  # the window slides past the failures
        damped.note_call(False)
    assert run(damped, [GOOD]) == ["online"]


def test_a_partly_failing_server_keeps_one_status_and_one_reason_while_it_stays_partly_failing():
    # Every write of a status or a reason is a database write and an event: degraded once, then nothing new, although
    # the count of failures in the window moves with every check.
    damped = DampedStatus(status=ServerStatus.ONLINE)
    pattern = [WRONG if step % 3 == 0 else GOOD for step in range(120)]  # one check in three fails
    first = [damped.after_check(verdict, POLICY, at=float(step)) for step, verdict in enumerate(pattern[:10])]
    assert [status for status, _ in first][-1] == "degraded"
    later = {damped.after_check(verdict, POLICY, at=float(10 + step)) for step, verdict in enumerate(pattern[10:])}
    assert later == {("degraded", "2 of the last 10 checks failed")}


def test_a_failed_check_of_a_degraded_server_keeps_it_degraded_until_its_retry_budget_is_spent():
    # Seen on the demo's delta: degraded for its failing real calls, then pending at every failed check and
    # degraded at the next good one, every two seconds.
    damped = DampedStatus(status=ServerStatus.ONLINE)
    for failed in (True, False, True, False, True):
        damped.note_call(failed)
    assert run(damped, [GOOD]) == ["degraded"]
    reason = damped.reason
    assert run(damped, [WRONG, GOOD, WRONG, GOOD]) == ["degraded"] * 4 and damped.reason == reason
    assert run(damped, [DEAD, DEAD, DEAD]) == ["degraded", "degraded", "offline"]  # an outage is still one
