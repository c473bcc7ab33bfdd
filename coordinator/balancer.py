"""Load balancing across redundant MCP servers: least-request scoring, outlier ejection and failover.

Modelled on Envoy (and agentgateway, which follows it):

- Least request with the power of two choices: two distinct eligible servers are drawn at random and the lower score
  wins. Drawing two instead of taking the global best keeps a burst of calls from all landing on the one server
  that looked best a moment ago, while still steering most traffic to the fast replicas.
- Outlier detection by consecutive failures: a server that fails `consecutive_failures_to_eject` calls in a row is
  ejected for `base_ejection_seconds * level` (capped), where the level grows with each ejection and shrinks again
  while the server stays healthy, as Envoy's ejection multiplier does. At most `max_ejected_share` of a tool's
  candidates are ejected at once, and never the last one.
- Half-open trial: when the ejection time is over, the server gets exactly one trial call (no other call goes to it
  while the trial is in flight); success restores it, failure ejects it again for longer.
- Maintenance: a candidate whose registry status is "maintenance" (health sets it while a window is open) is left out
  before any of the above, and reported as excluded with reason "maintenance": planned work is not a replica to
  route around by score, and a call there would show up in the window's figures as if it were traffic.

The score is ewma_latency_ms * (1 + in_flight) * status_penalty * (1 + error_penalty * error_rate); lower is better.

Thread-safety: a `Balancer` belongs to one asyncio loop (the fleet loop) and is never shared across threads, so its
state needs no locks. `choose()` and `started()` must run without an `await` between them (as `call_with_failover`
does), so that no other task can pick the same half-open server before its trial is claimed.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fleet import calls as fleet_calls
from mcp_client import (
    Answer,
    ConnectionLayerError,
    ConnectionLost,
    Deadline,
    InvalidResponse,
    RequestTimedOut,
    ServerError,
    ServerUnavailable,
    ToolCallResult,
)

DecisionKind = Literal["p2c", "only_candidate", "half_open", "all_ejected", "failover"]
DECISION_KINDS: tuple[DecisionKind, ...] = ("p2c", "only_candidate", "half_open", "all_ejected", "failover")

# Failures another server can fix: the request never reached a working server, or the server itself broke. A tool
# that answered isError is not here: it did its job and another replica would most likely answer the same.
FAILOVER_ERRORS: tuple[type[ConnectionLayerError], ...] = (
    ServerUnavailable,
    RequestTimedOut,
    ConnectionLost,
    ServerError,
    InvalidResponse,
)

# Before a server has answered anything, and when no candidate has, every server looks this fast: new servers
# then tie with each other rather than lose to a slow one nobody has measured either.
UNMEASURED_LATENCY_MS = 1.0

IDEMPOTENCY_ARGUMENT = "idempotency_key"


def _default_status_penalties() -> dict[str, float]:
    return {
        "online": 1.0,
        "unknown": 1.5,
        "degraded": 2.0,
        "pending": 3.0,
        "unhealthy": 10.0,
        "maintenance": 20.0,
        "offline": 50.0,
    }


@dataclass(frozen=True)
class BalancerPolicy:
    ewma_alpha: float = 0.3  # weight of the newest sample in the latency and error-rate averages
    consecutive_failures_to_eject: int = 3
    base_ejection_seconds: float = 5.0
    max_ejection_seconds: float = 300.0
    max_ejected_share: float = 0.5  # of one candidate set; the last non-ejected candidate is never ejected
    status_penalties: dict[str, float] = field(default_factory=_default_status_penalties)
    error_penalty: float = 5.0  # a server failing every call scores (1 + error_penalty) times worse
    seed: int | None = None  # for the power-of-two draw; set it to make tests reproducible

    def __post_init__(self) -> None:
        if not 0.0 < self.ewma_alpha <= 1.0:
            raise ValueError("ewma_alpha must be in (0, 1]")
        if self.consecutive_failures_to_eject < 1:
            raise ValueError("consecutive_failures_to_eject must be at least 1")
        if self.base_ejection_seconds <= 0 or self.max_ejection_seconds < self.base_ejection_seconds:
            raise ValueError("need 0 < base_ejection_seconds <= max_ejection_seconds")
        if not 0.0 <= self.max_ejected_share <= 1.0:
            raise ValueError("max_ejected_share must be in [0, 1]")
        if self.error_penalty < 0:
            raise ValueError("error_penalty must not be negative")

    def status_penalty(self, status: str) -> float:
        # A status the registry adds later is treated like "unknown" rather than as healthy.
        return self.status_penalties.get(status, self.status_penalties.get("unknown", 1.0))


@dataclass(frozen=True)
class Candidate:
    server: str
    status: str  # the registry's ServerStatus value
    priority: int = 100  # higher is preferred; breaks ties between equal scores


MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class Excluded:
    server: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"server": self.server, "reason": self.reason}


def in_service(candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[Excluded]]:
    """The candidates a call may go to, and those left out with why (in maintenance), each in the given order."""
    serving = [c for c in candidates if c.status != MAINTENANCE]
    excluded = [Excluded(c.server, MAINTENANCE) for c in _unique(candidates) if c.status == MAINTENANCE]
    return serving, excluded


@dataclass(frozen=True)
class Choice:
    server: str
    reason: str
    score: float
    order: tuple[str, ...]  # failover order of the other candidates: by score, ejected last
    kind: DecisionKind


@dataclass
class _ServerState:
    ewma_latency_ms: float | None = None
    in_flight: int = 0
    error_rate: float = 0.0  # EWMA of failures (1) and successes (0)
    consecutive_failures: int = 0
    ejected: bool = False  # stays True after ejected_until until the half-open trial succeeds
    ejected_until: float = 0.0
    ejections: int = 0  # lifetime count, for stats
    level: int = 0  # ejection multiplier: grows per ejection, decays while healthy
    restored_at: float | None = None  # when the last trial succeeded, for the decay
    trial_in_flight: bool = False
    calls: int = 0
    failures: int = 0


class Balancer:
    def __init__(self, policy: BalancerPolicy | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or BalancerPolicy()
        self._clock = clock
        self._rng = random.Random(self.policy.seed)
        self._servers: dict[str, _ServerState] = {}
        # Every candidate set seen by choose(): the max-ejected-share rule applies to each set a server belongs to,
        # because the balancer learns of failures per server, not per tool.
        self._pools: set[frozenset[str]] = set()
        self._decisions: dict[DecisionKind, int] = dict.fromkeys(DECISION_KINDS, 0)
        self._ejections_refused = 0

    # -- routing ---------------------------------------------------------------------------------------------------

    def choose(self, candidates: Sequence[Candidate]) -> Choice:
        """The server for the next call, and the order to fail over in. ValueError when there are no candidates.

        When every candidate is ejected and each already has its trial in flight, the one back soonest is still
        chosen (an ordinary call, not a second trial): Envoy's panic routing, since refusing the call outright would
        turn a routing problem into an outage. It is the one exception to "no other call during a trial".
        """
        unique = _unique(candidates)
        if not unique:
            raise ValueError("no candidates to choose from")
        self._pools.add(frozenset(c.server for c in unique))
        now = self._clock()
        scores = self._scores(unique)

        ready = [c for c in unique if self._trial_ready(c.server, now)]
        eligible = [c for c in unique if not self._state(c.server).ejected]
        kind: DecisionKind
        if ready:
            # Sent straight away rather than left to win a draw: with its error rate it might never win, and would
            # stay ejected (and count against the ejected share) for good.
            chosen = min(ready, key=lambda c: self._state(c.server).ejected_until)
            kind, reason = "half_open", "half-open trial after ejection"
        elif not eligible:
            # Better one probable failure than a certain one: call the server most likely to have recovered.
            free = [c for c in unique if not self._state(c.server).trial_in_flight] or unique
            chosen = min(free, key=lambda c: self._state(c.server).ejected_until)
            kind, reason = "all_ejected", "all candidates ejected: trying the one back soonest"
        elif len(eligible) == 1:
            chosen = eligible[0]
            kind = "only_candidate"
            reason = "only candidate" if len(unique) == 1 else "only candidate not ejected"
        else:
            first, second = self._rng.sample(eligible, 2)
            chosen, other = (first, second) if self._better(first, second, scores) else (second, first)
            kind = "p2c"
            reason = (
                f"p2c: {chosen.server} (score {scores[chosen.server]:.1f}) "
                f"over {other.server} (score {scores[other.server]:.1f})"
            )
        self._decisions[kind] += 1
        rest = [c for c in unique if c.server != chosen.server]
        order = tuple(c.server for c in sorted(rest, key=lambda c: self._failover_key(c, scores)))
        return Choice(server=chosen.server, reason=reason, score=scores[chosen.server], order=order, kind=kind)

    def accepts(self, server: str) -> bool:
        """False while the server's half-open trial is in flight: then no other call may go to it."""
        return not self._state(server).trial_in_flight

    # -- call accounting -------------------------------------------------------------------------------------------

    def started(self, server: str) -> bool:
        """A call to `server` begins. True when it is the server's half-open trial (pass it back to finished()).

        Any call to an ejected server with no trial in flight is its trial, also before the ejection time is over
        (all candidates ejected, or a last-resort failover): its result is the freshest evidence there is.
        """
        state = self._state(server)
        state.in_flight += 1
        if state.ejected and not state.trial_in_flight:
            state.trial_in_flight = True
            return True
        return False

    def finished(self, server: str, ok: bool, latency_ms: float | None, *, trial: bool = False) -> None:
        """A call to `server` ended. `trial` is what started() returned: only the trial decides an ejected server's
        fate, not calls that were already in flight when it was ejected."""
        state = self._state(server)
        alpha = self.policy.ewma_alpha
        now = self._clock()
        state.in_flight = max(0, state.in_flight - 1)
        state.calls += 1
        state.error_rate = alpha * (0.0 if ok else 1.0) + (1 - alpha) * state.error_rate
        if trial:
            state.trial_in_flight = False
        if ok:
            # Only answers measure service time: a failure's latency is an instant refusal or a timeout cap.
            if latency_ms is not None:
                previous = state.ewma_latency_ms
                state.ewma_latency_ms = latency_ms if previous is None else alpha * latency_ms + (1 - alpha) * previous
            state.consecutive_failures = 0
            if trial and state.ejected:
                state.ejected = False
                state.restored_at = now
            return
        state.failures += 1
        state.consecutive_failures += 1
        if trial and state.ejected:
            self._eject(state, now)  # a failed trial: back out, for longer
        elif not state.ejected and state.consecutive_failures >= self.policy.consecutive_failures_to_eject:
            if self._may_eject(server):
                self._eject(state, now)
            else:
                self._ejections_refused += 1

    def abandoned(self, server: str, *, trial: bool = False) -> None:
        """A call ended with no verdict on the server (the caller was cancelled, or the request could not be built).

        It frees the call's slot and, for a trial, lets the next call be the trial instead.
        """
        state = self._state(server)
        state.in_flight = max(0, state.in_flight - 1)
        if trial:
            state.trial_in_flight = False

    def record_failover(self) -> None:
        self._decisions["failover"] += 1

    # -- reporting -------------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        now = self._clock()
        servers = {
            name: {
                "ewma_latency_ms": state.ewma_latency_ms,
                "in_flight": state.in_flight,
                "error_rate": state.error_rate,
                "consecutive_failures": state.consecutive_failures,
                "ejected": state.ejected,
                "ejected_until_seconds": max(0.0, state.ejected_until - now) if state.ejected else None,
                "trial_in_flight": state.trial_in_flight,
                "ejections": state.ejections,
                "calls": state.calls,
                "failures": state.failures,
            }
            for name, state in sorted(self._servers.items())
        }
        return {"servers": servers, "decisions": dict(self._decisions), "ejections_refused": self._ejections_refused}

    # -- internals -------------------------------------------------------------------------------------------------

    def _state(self, server: str) -> _ServerState:
        state = self._servers.get(server)
        if state is None:
            state = self._servers[server] = _ServerState()
        return state

    def _trial_ready(self, server: str, now: float) -> bool:
        state = self._state(server)
        return state.ejected and state.ejected_until <= now and not state.trial_in_flight

    def _scores(self, candidates: Sequence[Candidate]) -> dict[str, float]:
        known = [s.ewma_latency_ms for c in candidates if (s := self._state(c.server)).ewma_latency_ms is not None]
        # An unmeasured server scores like a typical one among its peers, so it wins some draws and gets measured.
        default = statistics.median(known) if known else UNMEASURED_LATENCY_MS
        scores: dict[str, float] = {}
        for candidate in candidates:
            state = self._state(candidate.server)
            latency = state.ewma_latency_ms if state.ewma_latency_ms is not None else default
            scores[candidate.server] = (
                latency
                * (1 + state.in_flight)
                * self.policy.status_penalty(candidate.status)
                * (1 + self.policy.error_penalty * state.error_rate)
            )
        return scores

    @staticmethod
    def _better(first: Candidate, second: Candidate, scores: Mapping[str, float]) -> bool:
        """Whether `first` beats `second`; on a tie the higher priority wins, then `first` (the draw was random)."""
        a, b = scores[first.server], scores[second.server]
        if a != b:
            return a < b
        return first.priority >= second.priority

    def _failover_key(self, candidate: Candidate, scores: Mapping[str, float]) -> tuple[Any, ...]:
        state = self._state(candidate.server)
        if not state.ejected:
            return (0, scores[candidate.server], -candidate.priority, candidate.server)
        # Ejected: the one back soonest first; one whose trial is in flight last, as it cannot be called meanwhile.
        return (2 if state.trial_in_flight else 1, state.ejected_until, -candidate.priority, candidate.server)

    def _may_eject(self, server: str) -> bool:
        pools = [pool for pool in self._pools if server in pool]
        if not pools:
            return False  # never seen among other candidates: nothing shows another server could take its calls
        for pool in pools:
            ejected_after = 1 + sum(1 for name in pool if self._state(name).ejected)
            if ejected_after >= len(pool) or ejected_after > self.policy.max_ejected_share * len(pool) + 1e-9:
                return False
        return True

    def _eject(self, state: _ServerState, now: float) -> None:
        policy = self.policy
        if not state.ejected and state.restored_at is not None:
            # Envoy's multiplier decay: each base period spent healthy since the last restore forgives one level.
            state.level = max(0, state.level - int((now - state.restored_at) // policy.base_ejection_seconds))
        state.level += 1
        state.ejections += 1
        state.ejected = True
        state.ejected_until = now + min(policy.base_ejection_seconds * state.level, policy.max_ejection_seconds)


def _unique(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates in their order, each server once (its first entry)."""
    seen: set[str] = set()
    unique: list[Candidate] = []
    for candidate in candidates:
        if candidate.server not in seen:
            seen.add(candidate.server)
            unique.append(candidate)
    return unique


# -- failover --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    server: str
    ok: bool
    latency_ms: float | None
    error: str = ""


@dataclass
class FailoverResult:
    answer: Answer[ToolCallResult] | None
    server: str | None  # who answered
    attempts: list[Attempt] = field(default_factory=list)
    error: str = ""  # why no server answered; empty when one did
    excluded: list[Excluded] = field(default_factory=list)  # candidates left out before choosing (maintenance)

    @property
    def ok(self) -> bool:
        return self.answer is not None and not self.error


CallTool = Callable[..., Awaitable[Answer[ToolCallResult]]]


async def call_with_failover(
    balancer: Balancer,
    candidates: Sequence[Candidate],
    tool: str,
    arguments: Mapping[str, Any] | None,
    *,
    deadline: Deadline,
    idempotency_key: str | None = None,
    caller: str = "coordinator",
    correlation_id: str = "",
    call: CallTool | None = None,
) -> FailoverResult:
    """Call `tool` on the balancer's choice among `candidates`, moving down the failover order on failures another
    server can fix, all within one deadline.

    A tool answering isError counts as a failure and moves on too (a demo exchange in an outage answers so); when
    every candidate answered isError, the last such answer is returned with the error set. With `idempotency_key`
    the tool gets it as its `idempotency_key` argument (unless the caller set one), so a retry after a lost answer
    does not act twice on a server that honours it. Candidates in maintenance are left out (see `in_service`) and
    reported in the result's `excluded`. Other exceptions (cancellation, a request we could not build) propagate.
    """
    call_tool = call or fleet_calls.call_tool
    args = dict(arguments or {})
    if idempotency_key is not None:
        args.setdefault(IDEMPOTENCY_ARGUMENT, idempotency_key)
    if not candidates:
        return FailoverResult(answer=None, server=None, error="no candidates")
    serving, excluded = in_service(candidates)
    if not serving:
        names = ", ".join(e.server for e in excluded)
        error = f"no candidate in service: every one is in maintenance ({names})"
        return FailoverResult(answer=None, server=None, error=error, excluded=excluded)

    choice = balancer.choose(serving)
    attempts: list[Attempt] = []
    tool_error: tuple[Answer[ToolCallResult], str] | None = None
    for server in (choice.server, *choice.order):
        if deadline.expired:
            break
        if server != choice.server and not balancer.accepts(server):
            continue  # its half-open trial is in flight elsewhere; the chosen one is called regardless (see choose)
        if attempts:
            balancer.record_failover()
        # No await between choose() and the first started(): see the module docstring.
        trial = balancer.started(server)
        try:
            answer = await call_tool(
                server, tool, args, deadline=deadline, correlation_id=correlation_id, caller=caller
            )
        except FAILOVER_ERRORS as exc:
            latency = exc.outcome.latency_ms if exc.outcome is not None else None
            balancer.finished(server, False, latency, trial=trial)
            attempts.append(Attempt(server=server, ok=False, latency_ms=latency, error=str(exc)))
            continue
        except BaseException:
            balancer.abandoned(server, trial=trial)
            raise
        latency = answer.outcome.latency_ms
        if answer.result.is_error:
            balancer.finished(server, False, latency, trial=trial)
            message = f"the tool answered an error: {answer.result.text[:300]}"
            attempts.append(Attempt(server=server, ok=False, latency_ms=latency, error=message))
            tool_error = (answer, server)
            continue
        balancer.finished(server, True, latency, trial=trial)
        attempts.append(Attempt(server=server, ok=True, latency_ms=latency))
        return FailoverResult(answer=answer, server=server, attempts=attempts, excluded=excluded)

    if not attempts:
        error = "deadline exhausted before any attempt" if deadline.expired else "no candidate accepted the call"
    elif deadline.expired:
        error = f"deadline exhausted after {len(attempts)} attempt(s); last error: {attempts[-1].error}"
    else:
        error = f"all {len(attempts)} attempt(s) failed; last error: {attempts[-1].error}"
    if tool_error is not None:  # what the tool said is worth more to the caller than nothing
        return FailoverResult(
            answer=tool_error[0], server=tool_error[1], attempts=attempts, error=error, excluded=excluded
        )
    return FailoverResult(answer=None, server=None, attempts=attempts, error=error, excluded=excluded)
