"""A server's status from its checks, with damping: a retry budget before it is called down (pending in between),
and a number of good checks before it is called back, so one lost packet is no outage and a flapping server does
not flip with every check. Pure logic: no I/O, no clock.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from registry.models import ServerStatus

DOWN = {ServerStatus.OFFLINE, ServerStatus.UNHEALTHY}
LATENCY_WINDOW = 5
# Passive signals: the outcomes of the last real calls (not the checks). A server that answers its checks but fails
# a good share of the calls people make is partly failing: degraded.
CALL_WINDOW = 20
CALLS_TO_JUDGE = 5
FAILING_SHARE = 0.25


@dataclass(frozen=True)
class DampingPolicy:
    retries: int = 2  # failed checks tolerated (pending) before the server is called down
    recover_after: int = 2  # good checks in a row before a down server is called back
    latency_target_ms: float = 1_000.0  # slower than this: degraded


@dataclass(frozen=True)
class CheckVerdict:
    reachable: bool  # the liveness probe answered
    latency_ms: float | None = None
    expectation_ok: bool | None = None  # the synthetic call's expectation (None: no synthetic check)
    error: str = ""
    detail: str = ""  # what was checked, for the reason ("probe 3 ms, get_quote 9 ms ok")


@dataclass
class DampedStatus:
    status: str = ServerStatus.UNKNOWN
    reason: str = ""
    bad: int = 0  # failed checks in a row
    good: int = 0  # good checks in a row
    # Slowness is judged on the median of the last few checks, so a server near its target does not flip.
    recent_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    recent_calls: deque[bool] = field(default_factory=lambda: deque(maxlen=CALL_WINDOW))  # True: the call failed

    def note_call(self, failed: bool) -> None:
        """A real call's outcome (a passive signal); it counts at the next check."""
        self.recent_calls.append(failed)

    def _failing_calls(self) -> tuple[int, int]:
        return sum(self.recent_calls), len(self.recent_calls)

    def _bad(self, policy: DampingPolicy, down_status: str, what: str) -> tuple[str, str]:
        self.bad += 1
        self.good = 0
        if self.status in DOWN:
            return self.status, f"{'down' if self.status == ServerStatus.OFFLINE else 'unhealthy'}: {what}"
        if self.bad <= policy.retries:
            return ServerStatus.PENDING, f"{what} ({self.bad} of {policy.retries + 1} failed checks before down)"
        return down_status, f"{self.bad} checks in a row failed; last: {what}"

    def after_check(self, verdict: CheckVerdict, policy: DampingPolicy) -> tuple[str, str]:
        """The status and reason after one check (the caller writes them when they changed)."""
        if not verdict.reachable:
            status, reason = self._bad(policy, ServerStatus.OFFLINE, f"not answering: {verdict.error}")
        elif verdict.expectation_ok is False:
            status, reason = self._bad(policy, ServerStatus.UNHEALTHY, f"check failed: {verdict.error}")
        else:
            self.bad = 0
            self.good += 1
            if verdict.latency_ms is not None:
                self.recent_latencies.append(verdict.latency_ms)
            # At least three checks before calling a server slow: one slow answer is no trend.
            median = statistics.median(self.recent_latencies) if len(self.recent_latencies) >= 3 else 0.0
            # Reasons stay the same from one check to the next (a reason that changes is a write and an event):
            # the figures of each check are in its samples.
            if self.status in DOWN and self.good < policy.recover_after:
                status = self.status
                reason = f"recovering: {self.good} of {policy.recover_after} good checks"
            elif median > policy.latency_target_ms:
                status = ServerStatus.DEGRADED
                reason = f"slow: the median check is over the {policy.latency_target_ms:.0f} ms target"
            elif (calls := self._failing_calls())[1] >= CALLS_TO_JUDGE and calls[0] >= FAILING_SHARE * calls[1]:
                status = ServerStatus.DEGRADED
                reason = f"partly failing: at least {FAILING_SHARE:.0%} of the last {CALL_WINDOW} real calls failed"
            else:
                status, reason = ServerStatus.ONLINE, "healthy: checks pass"
        self.status, self.reason = status, reason
        return status, reason

    def session_down(self, policy: DampingPolicy, reason: str) -> tuple[str, str]:
        """A session that ended is a fact, not a doubtful check: down at once."""
        self.bad, self.good = policy.retries + 1, 0
        self.status, self.reason = ServerStatus.OFFLINE, reason
        return self.status, self.reason

    def session_up(self, policy: DampingPolicy, reason: str) -> tuple[str, str]:
        """A session came up and was discovered: a first good sign; a down server still needs its good checks."""
        self.bad = 0
        self.good += 1
        if self.status in DOWN and self.good < policy.recover_after:
            self.reason = f"reconnected; recovering: {self.good} of {policy.recover_after} good checks"
            return self.status, self.reason
        self.status, self.reason = ServerStatus.ONLINE, reason
        return self.status, self.reason

    def observed(self, status: str, reason: str) -> tuple[str, str]:
        """Anything else the supervisor saw (a discovery that failed): taken as it is, except that a failure seen
        while the server is already down, or failing its checks (pending), does not make it look better: down ->
        degraded -> down and pending -> degraded -> pending are flaps; the checks' retry budget decides."""
        if self.status in DOWN | {ServerStatus.PENDING} and status not in (ServerStatus.ONLINE,):
            return self.status, self.reason
        self.status, self.reason = status, reason
        return status, reason
