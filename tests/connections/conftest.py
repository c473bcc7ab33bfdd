"""Fixtures for the connection-layer tests. Every test talks to real MCP servers; nothing is mocked."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from mcp_client import BackoffPolicy, CallOutcome, ConnectionHub, Subscription

from .helpers import HttpServer, marked_pids, new_marker, wait_until

# Short delays so reconnect tests finish in about a second; jitter kept to check it stays within bounds.
FAST_BACKOFF = BackoffPolicy(initial=0.1, factor=2.0, maximum=0.8, jitter=0.1, stable_after=0.5)

T = TypeVar("T")


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique tag for this test's server processes; after the test none may remain."""
    value = new_marker()
    yield value
    leftovers = marked_pids(value)
    if leftovers and not wait_until(lambda: not marked_pids(value), 8.0):
        leftovers = marked_pids(value)
        for pid in leftovers:  # fail, but don't leave this test's orphans running on the machine
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"server processes left behind by the test: {leftovers}")


class Received(Sequence[T]):
    """What a stream subscriber has received so far, as a list: every read first takes what is queued, so a test
    sees an outcome as soon as the call that made it returns."""

    def __init__(self, subscription: Subscription[Any], transform: Callable[[Any], T]) -> None:
        self._subscription = subscription
        self._transform = transform
        self._items: list[T] = []

    def _take(self) -> list[T]:
        self._items.extend(self._transform(item) for item in self._subscription.drain())
        return self._items

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        return self._take()[index]

    def __len__(self) -> int:
        return len(self._take())

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._take()))

    def clear(self) -> None:
        self._take()
        self._items.clear()


@pytest.fixture
async def hub(marker: str) -> AsyncIterator[ConnectionHub]:
    # Depends on `marker` so the orphan check runs after close_all().
    hub = ConnectionHub(backoff=FAST_BACKOFF)
    yield hub
    await hub.close_all()


@pytest.fixture
def outcomes(hub: ConnectionHub) -> Received[CallOutcome]:
    """Every call outcome of the hub's sessions, as a subscriber of its outcome stream sees them."""
    return Received(hub.streams.outcomes.subscribe(name="test-outcomes", maxsize=100_000), lambda outcome: outcome)


@pytest.fixture
def notifications(hub: ConnectionHub) -> Received[tuple[str, str, dict]]:
    """Every server notification, as (server, method, params)."""
    return Received(
        hub.streams.notifications.subscribe(name="test-notifications", maxsize=100_000),
        lambda item: (item.server, item.method, item.params),
    )


@pytest.fixture
def http_servers(marker: str) -> Iterator[list[HttpServer]]:
    """Register HttpServer objects here to have them stopped after the test."""
    servers: list[HttpServer] = []
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _quiet_sdk_logs() -> None:
    # The SDK logs a traceback for every garbage line a misbehaving server prints; expected here.
    logging.getLogger("mcp.client.stdio").setLevel(logging.CRITICAL)
