"""Fixtures for the connection-layer tests. Every test talks to real MCP servers; nothing is mocked."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator

import pytest

from registry.connections import BackoffPolicy, CallOutcome, ConnectionHub

from .helpers import HttpServer, marked_pids, new_marker, wait_until

# Short delays so reconnect tests finish in about a second; jitter kept to check it stays within bounds.
FAST_BACKOFF = BackoffPolicy(initial=0.1, factor=2.0, maximum=0.8, jitter=0.1, stable_after=0.5)


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


@pytest.fixture
def outcomes() -> list[CallOutcome]:
    return []


@pytest.fixture
def notifications() -> list[tuple[str, str, dict]]:
    return []


@pytest.fixture
async def hub(
    marker: str, outcomes: list[CallOutcome], notifications: list[tuple[str, str, dict]]
) -> AsyncIterator[ConnectionHub]:
    # Depends on `marker` so the orphan check runs after close_all().
    hub = ConnectionHub(
        on_call=outcomes.append,
        on_notification=lambda key, kind, payload: notifications.append((key, kind, payload)),
        backoff=FAST_BACKOFF,
    )
    yield hub
    await hub.close_all()


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
