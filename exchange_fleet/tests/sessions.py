"""Helpers shared by the exchange_fleet tests: real MCP sessions, never a mocked protocol."""

import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client
from mcp_types import CallToolResult

from exchange_fleet.profiles import ExchangeProfile
from exchange_fleet.server import build_exchange_server

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# Generous per-request timeout: a hung call fails the test instead of hanging the run.
READ_TIMEOUT_S = 10.0


def make_profile(**overrides: Any) -> ExchangeProfile:
    """A quiet test profile: no latency, no faults, and no ticks unless asked for."""
    base: dict[str, Any] = {"name": "testex", "tick_interval_s": 3600.0, "seed": 7}
    base.update(overrides)
    return ExchangeProfile(**base)


class ManualClock:
    """Monotonic stand-in the test advances by hand: time-dependent behaviour without sleeping.

    Handed to a server as `clock`, it also stops the server's wall clock (and so its price ticks) between the
    test's own steps, so a quote and a reserve made one after the other see the same tick.
    """

    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def connect(
    profile: ExchangeProfile,
    clock: Callable[[], float] | None = None,
    *,
    wall_clock: Callable[[], float] | None = None,
) -> AsyncIterator[Client]:
    """An in-process MCP session with a freshly built exchange server (optionally on the test's clocks)."""
    clocks: dict[str, Callable[[], float]] = {}
    if clock is not None:
        clocks["clock"] = clock
    if wall_clock is not None:
        clocks["wall_clock"] = wall_clock
    server = build_exchange_server(profile, **clocks)
    async with Client(server, read_timeout_seconds=READ_TIMEOUT_S) as client:
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call (fails the test with the error text otherwise)."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return " ".join(getattr(block, "text", "") for block in result.content)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
