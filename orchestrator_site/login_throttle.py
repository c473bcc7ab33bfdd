"""Throttling of failed logins, per account and per client address, for the login page and the token endpoint.

Counted in Django's cache (local memory in the embedded mode, Redis when REDIS_URL is set, so every process shares
the count). A blocked attempt is refused before the password is checked: a guesser learns nothing more once the
budget is spent, whatever they try.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


@dataclass(frozen=True)
class Blocked:
    retry_after_seconds: int

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.retry_after_seconds / 60))
        return (
            "Too many failed logins for this account or from this address. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )


def client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [
        (f"login-failures:account:{account}", settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT),
        (f"login-failures:address:{address}", settings.LOGIN_THROTTLE_FAILURES_PER_ADDRESS),
    ]


def blocked(username: str, address: str) -> Blocked | None:
    """Whether this attempt must be refused now, and for how long."""
    now = time.time()
    for key, limit in _keys(username, address):
        window = cache.get(key)
        if window and window["count"] >= limit:
            return Blocked(max(1, int(window["until"] - now)))
    return None


def record_failure(username: str, address: str) -> None:
    window_seconds = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    now = time.time()
    for key, _limit in _keys(username, address):
        window = cache.get(key) or {"count": 0, "until": now + window_seconds}
        window["count"] += 1
        cache.set(key, window, timeout=max(1, int(window["until"] - now)))


def record_success(username: str, address: str) -> None:
    # The account's count is cleared; the address keeps its count, or one valid account would reset a guesser's
    # budget for every other account from that address.
    cache.delete(_keys(username, address)[0][0])
