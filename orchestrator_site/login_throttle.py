"""Throttling of failed logins for the login page and the token endpoint.

Three counts, each over a window that starts with its first attempt (LOGIN_THROTTLE_WINDOW_SECONDS):
- per account and client address (LOGIN_THROTTLE_FAILURES_PER_ACCOUNT): a guesser at one address is stopped
  without locking the account's owner out from any other address;
- per account over all addresses (LOGIN_THROTTLE_FAILURES_PER_ACCOUNT_TOTAL, larger): a guesser spread over many
  addresses is stopped too; only this one can block the owner everywhere, and only after that many failures;
- per client address over all accounts (LOGIN_THROTTLE_FAILURES_PER_ADDRESS): one address trying many accounts.
  Everyone behind that address waits once it is spent (a shared NAT included); other addresses are unaffected.

Counted in Django's cache (local memory in the embedded mode, Redis when REDIS_URL is set, so every process shares
the count) with its atomic `add` and `incr` only: an attempt takes its place in every count *before* the password
is checked, and is refused when that place is beyond a limit. So 30 parallel guesses get at most the limit of
password checks (a read-then-write would let all 30 through). A refused attempt gives its places back, so hammering
a blocked pair does not spend the account's total; a successful login gives them back too and clears its pair.
A refused attempt is refused before the password is checked: a guesser learns nothing more once a budget is spent.
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


@dataclass(frozen=True)
class _Count:
    key: str
    limit: int


def client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _counts(username: str, address: str) -> list[_Count]:
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    # The narrowest first: a pair over its limit is refused before it touches the wider counts.
    return [
        _Count(f"login-failures:account-address:{account}:{address}", settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT),
        _Count(f"login-failures:account:{account}", settings.LOGIN_THROTTLE_FAILURES_PER_ACCOUNT_TOTAL),
        _Count(f"login-failures:address:{address}", settings.LOGIN_THROTTLE_FAILURES_PER_ADDRESS),
    ]


def _take_place(key: str, window: int) -> int:
    """Increment the count at `key` atomically, opening its window first when there is none; the new count."""
    for _ in range(3):
        if cache.add(key, 0, timeout=window):
            # The window's end, for Retry-After (the cache API cannot tell a key's remaining time).
            cache.set(f"{key}:until", time.time() + window, timeout=window)
        try:
            count = cache.incr(key)
        except ValueError:
            continue  # the window expired between add and incr: open a new one
        if count == 1:
            # Redis checks that the key exists, then INCRs: a key that expired in between comes back without a
            # timeout, and would count forever. Setting the timeout again costs nothing on a fresh window.
            cache.touch(key, window)
        return count
    raise RuntimeError(f"the login throttle could not count at {key}")


def _give_back(key: str) -> None:
    try:
        count = cache.decr(key)
    except ValueError:
        return  # the window expired: nothing to give back
    if count < 0:
        # Only a key recreated by DECR after it expired (Redis, as above) goes below zero; it has no timeout.
        cache.delete(key)


def _retry_after(key: str, window: int) -> Blocked:
    until = cache.get(f"{key}:until")
    remaining = (until - time.time()) if isinstance(until, int | float) else window
    return Blocked(max(1, math.ceil(remaining)))


def admit(username: str, address: str) -> Blocked | None:
    """Count this login attempt as a failure now, before its password is checked; a refusal when a limit is spent.

    Call `record_success` when the password turns out right; a wrong one needs nothing more.
    """
    window = settings.LOGIN_THROTTLE_WINDOW_SECONDS
    taken: list[str] = []
    for count in _counts(username, address):
        taken.append(count.key)
        if _take_place(count.key, window) > count.limit:
            for key in taken:
                _give_back(key)
            return _retry_after(count.key, window)
    return None


def record_success(username: str, address: str) -> None:
    # The pair's count is cleared; the account's total and the address give back only this attempt's place, or one
    # valid account would reset a guesser's budget for every other account from that address (or every address).
    pair, *wider = _counts(username, address)
    cache.delete(pair.key)
    for count in wider:
        _give_back(count.key)
