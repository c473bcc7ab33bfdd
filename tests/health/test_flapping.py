"""Flap detection: a server that keeps going down and coming back is one steady "degraded: flapping" status and one
open alert under the down rule for as long as it flaps, not an outage and a recovery (and an alert) every cycle.

The pure tests drive the damping with a clock of their own; the database test drives the alert rounds with the
statuses the monitor writes (a real exchange that flaps: tests/health/test_alerts.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from health.alerting import evaluate
from health.damping import CheckVerdict, DampedStatus, DampingPolicy
from health.flapping import FlapPolicy, is_flapping_reason
from health.models import Alert, AlertRule, NotificationChannel, NotificationDelivery
from registry.models import Server, ServerStatus
from registry.services import server_create

# The demo's delta: checked every 2 s, 2 retries, 3 good checks to recover, down 10 s in every minute.
DELTA = DampingPolicy(retries=2, recover_after=3, latency_target_ms=120)
GOOD = CheckVerdict(reachable=True, latency_ms=20, expectation_ok=True)
DEAD = CheckVerdict(reachable=False, error="exchange outage (simulated)")
WRONG = CheckVerdict(reachable=True, latency_ms=20, expectation_ok=False, error="simulated failure")


def delta_checks(seconds: float, *, outage_every: float = 60.0, outage_for: float = 10.0, first: float = 20.0):
    """(time, verdict) of a server checked every 2 s, in an outage for `outage_for` s every `outage_every` s from
    `first`; every seventh check outside them fails its expectation (delta's error rate, made repeatable)."""
    for step, at in enumerate(range(0, int(seconds), 2)):
        in_outage = at >= first and (at - first) % outage_every < outage_for
        yield float(at), DEAD if in_outage else WRONG if step % 7 == 6 else GOOD


def timeline(damped: DampedStatus, checks, policy: DampingPolicy = DELTA) -> list[tuple[float, str, str]]:
    """Every change of the status shown: (time, status, reason)."""
    changes, last = [], damped.status
    for at, verdict in checks:
        status, reason = damped.after_check(verdict, policy, at=at)
        if status != last:
            changes.append((at, status, reason))
            last = status
    return changes


def test_a_server_down_ten_seconds_every_minute_is_one_steady_flapping_status():
    damped = DampedStatus(status=ServerStatus.ONLINE)
    changes = timeline(damped, delta_checks(8 * 60))
    flapping = [change for change in changes if is_flapping_reason(change[2])]
    assert flapping, changes
    started = flapping[0][0]
    # Three outages (six up/down changes) before it is called flapping, within the first three minutes ...
    assert started < 180
    assert flapping[0][1] == ServerStatus.DEGRADED
    assert flapping[0][2] == "flapping: 6 up/down changes in 10 min"
    # ... and from then on one status, through five more outages: no comb.
    assert [change for change in changes if change[0] > started] == []
    assert damped.status == ServerStatus.DEGRADED


def test_flapping_stops_once_the_server_holds_a_state_and_a_later_flap_starts_afresh():
    damped = DampedStatus(status=ServerStatus.ONLINE)
    timeline(damped, delta_checks(5 * 60))
    assert is_flapping_reason(damped.reason)
    # The outages stop: after three minutes up it is stable again (hysteresis: not at the first quiet minute).
    quiet = [(300.0 + at, GOOD) for at, _ in delta_checks(4 * 60, first=10_000)]
    changes = timeline(damped, quiet)
    assert [(status, reason) for _, status, reason in changes] == [(ServerStatus.ONLINE, "healthy: checks pass")]
    assert 300 + 120 < changes[0][0] <= 300 + 190
    # One new outage is an outage again (the old changes were forgiven), not flapping at once.
    outage = [(600.0 + at, verdict) for at, verdict in delta_checks(40, first=0, outage_for=10)]
    statuses = [status for _, status, _ in timeline(damped, outage)]
    assert ServerStatus.OFFLINE in statuses and not is_flapping_reason(damped.reason)


def test_a_long_outage_of_a_flapping_server_is_shown_as_an_outage():
    policy = DampingPolicy(retries=2, recover_after=3, flapping=FlapPolicy(down_limit_seconds=30))
    damped = DampedStatus(status=ServerStatus.ONLINE)
    timeline(damped, delta_checks(5 * 60), policy)
    assert is_flapping_reason(damped.reason)
    down = [(300.0 + 2 * step, DEAD) for step in range(40)]
    changes = timeline(damped, down, policy)
    assert changes[-1][1] == ServerStatus.OFFLINE
    assert changes[-1][0] - 300 >= 30  # degraded (flapping) through a short spell, offline once it lasts


def test_checks_that_fail_now_and_then_make_a_steady_degraded_not_online_pending_every_other_check():
    damped = DampedStatus(status=ServerStatus.ONLINE)
    # One check in four fails (never three in a row): today's delta between its outages.
    checks = [(2.0 * step, WRONG if step % 4 == 3 else GOOD) for step in range(200)]
    changes = timeline(damped, checks)
    assert [status for _, status, _ in changes] == ["pending", "online", "pending", "degraded"]
    assert changes[-1][2] == "2 of the last 10 checks failed"
    # Clean checks again: online once the whole window is clean, not at the first good check.
    back = timeline(damped, [(400.0 + 2 * step, GOOD) for step in range(12)])
    assert back == [(418.0, ServerStatus.ONLINE, "healthy: checks pass")]


# -- the alert rounds ----------------------------------------------------------------------------------------------


def _status(server: Server, status: str, reason: str) -> None:
    Server.objects.filter(pk=server.pk).update(status=status, status_reason=reason)


@pytest.mark.django_db
def test_a_flapping_server_is_one_open_alert_that_stays_open_and_tells_once(settings):
    settings.HEALTH_ALERT_CALLABLES = {"collect": "tests.health.test_alerts.collect"}
    NotificationChannel.objects.create(name="py", kind="callable", callable_name="collect")
    AlertRule.objects.create(
        name="server down", kind="down", severity="critical", group_wait_seconds=0, group_interval_seconds=10
    )
    delta = server_create(name="exchange-delta", transport="http", url="http://127.0.0.1:9/mcp")
    start = timezone.now()
    flapping = "flapping: 6 up/down changes in 10 min"

    def round_at(seconds: float, status: str, reason: str) -> list[dict]:
        _status(delta, status, reason)
        return evaluate(start + timedelta(seconds=seconds))

    # The first outage, before the pattern is known: an ordinary down alert.
    assert [c["what"] for c in round_at(0, "offline", "3 checks in a row failed; last: not answering")] == ["firing"]
    # It comes back degraded: flapping. The same alert stays open, now saying so.
    assert round_at(12, "degraded", flapping) == []
    # Eight minutes of it: every later outage (shown offline only when it lasts) and return is the same alert.
    for minute in range(1, 9):
        assert round_at(60 * minute, "offline", "3 checks in a row failed; last: not answering") == []
        assert round_at(60 * minute + 12, "degraded", flapping) == []
    (alert,) = Alert.objects.all()
    assert alert.state == "firing"
    assert alert.summary == f"exchange-delta is {flapping}"
    assert alert.cause == "exchange-delta is offline: 3 checks in a row failed; last: not answering"
    assert NotificationDelivery.objects.count() == 1  # told once, when it fired
    # Stable again: resolved, saying how; the cause is kept.
    (change,) = round_at(600, "online", "healthy: checks pass")
    assert change["what"] == "resolved" and change["flapping"] is True
    assert change["resolution"] == "stable again: now online (healthy: checks pass)"
    assert change["cause"] == alert.cause
