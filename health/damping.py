"""A server's status from its checks, with damping: a retry budget before it is called down (pending in between),
a number of good checks before it is called back, so one lost packet is no outage; a server whose checks fail now
and then is "degraded" (partly failing) rather than online and pending by turns; and a server that keeps going down
and coming back is "degraded: flapping" (health/flapping.py) rather than a comb of outages.

Two layers: the raw status (retry budget and recovery, what the checks say) and the status shown, which damps the
raw one. Pure logic: no I/O; the clock is an argument (monotonic seconds), read only when not given.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field

from health.flapping import DOWN, FlapDetector, FlapPolicy, is_flapping_reason
from registry.models import ServerStatus

LATENCY_WINDOW = 5
# Partly failing: failed checks among the last CHECK_WINDOW, with good ones between (an outage is not partial: its
# failures are forgotten once the server is called down). Degraded from PARTLY_FAILING_AT failures, online again
# only once the window is clean (hysteresis: no online <-> degraded at every check).
CHECK_WINDOW = 10
PARTLY_FAILING_AT = 2
# Passive signals: the outcomes of the last real calls (not the checks). A server that answers its checks but fails
# a good share of the calls people make is partly failing: degraded.
CALL_WINDOW = 20
CALLS_TO_JUDGE = 5
FAILING_SHARE = 0.25
CALLS_REASON_START = "partly failing: at least "


@dataclass(frozen=True)
class DampingPolicy:
    retries: int = 2  # failed checks tolerated (pending) before the server is called down
    recover_after: int = 2  # good checks in a row before a down server is called back
    latency_target_ms: float = 1_000.0  # slower than this: degraded
    flapping: FlapPolicy = FlapPolicy()


@dataclass(frozen=True)
class CheckVerdict:
    reachable: bool  # the liveness probe answered
    latency_ms: float | None = None
    expectation_ok: bool | None = None  # the synthetic call's expectation (None: no synthetic check)
    error: str = ""
    detail: str = ""  # what was checked, for the reason ("probe 3 ms, get_quote 9 ms ok")


@dataclass
class DampedStatus:
    status: str = ServerStatus.UNKNOWN  # shown (written to the registry)
    reason: str = ""
    raw: str = ""  # what the checks say, before the partly-failing and flapping layers ("" until the first sign)
    raw_reason: str = ""
    bad: int = 0  # failed checks in a row
    good: int = 0  # good checks in a row
    # Slowness is judged on the median of the last few checks, so a server near its target does not flip.
    recent_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    recent_calls: deque[bool] = field(default_factory=lambda: deque(maxlen=CALL_WINDOW))  # True: the call failed
    recent_checks: deque[bool] = field(default_factory=lambda: deque(maxlen=CHECK_WINDOW))  # True: it failed
    partly_failing: bool = False
    flaps: FlapDetector = field(default_factory=FlapDetector)

    def __post_init__(self) -> None:
        if not self.raw:
            self.raw, self.raw_reason = self.status, self.reason

    def note_call(self, failed: bool) -> None:
        """A real call's outcome (a passive signal); it counts at the next check."""
        self.recent_calls.append(failed)

    def _failing_calls(self) -> tuple[int, int]:
        return sum(self.recent_calls), len(self.recent_calls)

    def _failing_share(self) -> float:
        # Hysteresis: degraded for failing calls from FAILING_SHARE, online again only under half of it, so a server
        # near the share is not degraded and online by turns.
        partly = self.raw == ServerStatus.DEGRADED and self.raw_reason.startswith(CALLS_REASON_START)
        return FAILING_SHARE / 2 if partly else FAILING_SHARE

    def _bad(self, policy: DampingPolicy, down_status: str, what: str) -> tuple[str, str]:
        self.bad += 1
        self.good = 0
        if self.raw in DOWN:
            return self.raw, f"{'down' if self.raw == ServerStatus.OFFLINE else 'unhealthy'}: {what}"
        if self.bad <= policy.retries:
            return ServerStatus.PENDING, f"{what} ({self.bad} of {policy.retries + 1} failed checks before down)"
        return down_status, f"{self.bad} checks in a row failed; last: {what}"

    def after_check(self, verdict: CheckVerdict, policy: DampingPolicy, at: float | None = None) -> tuple[str, str]:
        """The status and reason after one check (the caller writes them when they changed)."""
        self.recent_checks.append(not verdict.reachable or verdict.expectation_ok is False)
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
            if self.raw in DOWN and self.good < policy.recover_after:
                status = self.raw
                reason = f"recovering: {self.good} of {policy.recover_after} good checks"
            elif median > policy.latency_target_ms:
                status = ServerStatus.DEGRADED
                reason = f"slow: the median check is over the {policy.latency_target_ms:.0f} ms target"
            elif (calls := self._failing_calls())[1] >= CALLS_TO_JUDGE and calls[0] >= self._failing_share() * calls[1]:
                status = ServerStatus.DEGRADED
                reason = f"{CALLS_REASON_START}{FAILING_SHARE:.0%} of the last {CALL_WINDOW} real calls failed"
            else:
                status, reason = ServerStatus.ONLINE, "healthy: checks pass"
        return self._settle(status, reason, policy, at)

    def session_down(self, policy: DampingPolicy, reason: str, at: float | None = None) -> tuple[str, str]:
        """A session that ended is a fact, not a doubtful check: down at once."""
        self.bad, self.good = policy.retries + 1, 0
        return self._settle(ServerStatus.OFFLINE, reason, policy, at)

    def session_up(self, policy: DampingPolicy, reason: str, at: float | None = None) -> tuple[str, str]:
        """A session came up and was discovered: a first good sign; a down server still needs its good checks."""
        self.bad = 0
        self.good += 1
        if self.raw in DOWN and self.good < policy.recover_after:
            return self._settle(
                self.raw, f"reconnected; recovering: {self.good} of {policy.recover_after} good checks", policy, at
            )
        return self._settle(ServerStatus.ONLINE, reason, policy, at)

    def observed(
        self, status: str, reason: str, policy: DampingPolicy | None = None, at: float | None = None
    ) -> tuple[str, str]:
        """Anything else the supervisor saw (a discovery that failed): taken as it is, except that a failure seen
        while the server is already down, or failing its checks (pending), does not make it look better: down ->
        degraded -> down and pending -> degraded -> pending are flaps; the checks' retry budget decides."""
        if self.raw in DOWN | {ServerStatus.PENDING} and status not in (ServerStatus.ONLINE,):
            return self.status, self.reason
        return self._settle(status, reason, policy or DampingPolicy(), at)

    def _settle(self, raw: str, raw_reason: str, policy: DampingPolicy, at: float | None) -> tuple[str, str]:
        """The status shown, from the raw one: flapping, then partly failing, damp it."""
        at = time.monotonic() if at is None else at
        self.raw, self.raw_reason = raw, raw_reason
        if raw in DOWN:
            self.recent_checks.clear()  # an outage's failures are the outage's, not a partial failure afterwards
            self.partly_failing = False
        failures = sum(self.recent_checks)
        if raw == ServerStatus.ONLINE:
            self.partly_failing = failures >= PARTLY_FAILING_AT or (self.partly_failing and failures > 0)
        elif raw != ServerStatus.PENDING:
            self.partly_failing = False
        flapping = self.flaps.observe(raw, at, policy.flapping)
        if flapping and self.flaps.down_for(at) < policy.flapping.down_limit_seconds:
            status, reason = ServerStatus.DEGRADED, self.flaps.reason(policy.flapping)
        elif (self.partly_failing and raw in (ServerStatus.ONLINE, ServerStatus.PENDING)) or (
            raw == ServerStatus.PENDING and self.status == ServerStatus.DEGRADED
        ):
            # A failed check of a degraded server keeps it degraded (its retry budget still counts: enough failures
            # in a row and it is down), instead of degraded <-> pending at every other check.
            status = ServerStatus.DEGRADED
            tail = f" of the last {CHECK_WINDOW} checks failed"
            # The reason it became degraded with, kept (a reason that changes is a write and an event).
            keep = self.status == ServerStatus.DEGRADED and (
                self.reason.endswith(tail) or (raw == ServerStatus.PENDING and not is_flapping_reason(self.reason))
            )
            reason = self.reason if keep else f"{failures}{tail}"
        else:
            status, reason = raw, raw_reason
        self.status, self.reason = status, reason
        return status, reason
