"""Whether an analysed arbitrage opportunity may still be executed, checked when the execution is asked for, before
anything is logged or sent.

- Fresh quotes: the opportunity is priced from two quotes (the buy side's asks, the sell side's bids); it executes
  only while the older of them is at most `max_age_seconds` old (the request's, or the setting
  COORDINATOR_EXECUTE_MAX_AGE_SECONDS, default 30 s). An opportunity from a report a minute old is a guess about
  a market that has moved on; the operator runs the analysis again.
- Both exchanges online: the registry's status, as health decided it (health is the one decider; this reads the
  status, it never re-evaluates maintenance windows). Only "online" executes. Refused: maintenance (planned work),
  offline, pending (checks failing), unhealthy, unknown (not checked yet), disabled, and degraded too: degraded
  means slow or partly failing, and a participant that fails between its reservation and its confirmation leaves
  the transaction in doubt with funds held, which is worse than not trading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.conf import settings

from registry.models import Server, ServerStatus

DEFAULT_MAX_AGE_SECONDS = 30.0
MAX_AGE_LIMIT_SECONDS = 3_600.0
EXECUTABLE_STATUSES = frozenset({ServerStatus.ONLINE})


class NotExecutableReason(StrEnum):
    STALE = "stale"
    SERVER_NOT_ONLINE = "server_not_online"


class OpportunityNotExecutable(Exception):
    """The opportunity was not executed: why (a code), in words, and the figures behind it."""

    def __init__(self, reason: NotExecutableReason, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details


def default_max_age_seconds() -> float:
    return float(settings.COORDINATOR_EXECUTE_MAX_AGE_SECONDS)


def quoted_at(result: Mapping[str, Any], chosen: Mapping[str, Any]) -> str | None:
    """When the older of the opportunity's two quotes was taken (ISO 8601), from the analysis's views; the time of
    the analysis when a view is missing (a report stored before the views were kept)."""
    wanted = {(chosen.get("buy_on"), chosen.get("symbol")), (chosen.get("sell_on"), chosen.get("symbol"))}
    views = result.get("views") or []
    times = [view.get("quoted_at") for view in views if (view.get("server"), view.get("symbol")) in wanted]
    if len(times) == len(wanted) and all(times):
        return min(times, key=datetime.fromisoformat)
    return result.get("evaluated_at")


def check_executable(spec: Mapping[str, Any], servers: Sequence[str], *, max_age_seconds: float, now: datetime) -> None:
    """Raise OpportunityNotExecutable unless every server is online and the opportunity's quotes (`spec["quoted_at"]`)
    are at most `max_age_seconds` old. Statuses first: a server in maintenance stays refused however fresh the
    quotes are, and rerunning the analysis would not help."""
    rows = list(Server.objects.filter(name__in=servers).values_list("name", "status", "status_reason"))
    statuses = {name: status for name, status, _ in rows}
    reasons = {name: reason for name, _, reason in rows}
    down = [name for name in servers if statuses.get(name) not in EXECUTABLE_STATUSES]
    if down:
        said = "; ".join(
            f"{name} is {statuses.get(name, 'gone')}" + (f" ({reasons[name]})" if reasons.get(name) else "")
            for name in down
        )
        raise OpportunityNotExecutable(
            NotExecutableReason.SERVER_NOT_ONLINE,
            f"Not executed: {said}. An opportunity executes only while both of its exchanges are online.",
            {"servers": {name: statuses.get(name) for name in down}},
        )
    stamp = spec.get("quoted_at")
    if not stamp:
        return
    age = (now - datetime.fromisoformat(stamp)).total_seconds()
    if age > max_age_seconds:
        raise OpportunityNotExecutable(
            NotExecutableReason.STALE,
            f"Not executed: the quotes behind this opportunity are {age:.0f} s old, over the {max_age_seconds:g} s "
            "limit (max_age_seconds). Run the analysis again for current prices.",
            {"age_seconds": round(age, 1), "max_age_seconds": max_age_seconds, "quoted_at": stamp},
        )
