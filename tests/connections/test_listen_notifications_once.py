"""A 2026-07-28 server's events reach the notifications stream once: the SDK hands each event of a
subscriptions/listen stream both to the stream and to the message handler, and only the stream's copy is reported."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange_fleet.launcher import free_port, stop_process, wait_for_port
from mcp_client import ConnectionHub, ServerTarget

UPSTREAM = Path(__file__).resolve().parents[1] / "mcp_servers" / "conformance_upstream.py"


@pytest.fixture
def upstream_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(UPSTREAM), "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(process)


async def test_a_resource_update_on_the_2026_era_is_reported_once(upstream_url):
    hub = ConnectionHub()
    notifications = hub.streams.notifications.subscribe(name="test", maxsize=100)
    try:
        await hub.ensure(ServerTarget(key="upstream", transport="http", url=upstream_url))
        status = await hub.wait_connected("upstream", 10)
        assert status.era == "modern"
        await hub.subscribe_resources("upstream", ["test://watched-resource"])
        # The listen stream restarts with the new filter; an update is sent until one arrives (it may start late).
        seen: list[str] = []
        for attempt in range(50):
            await hub.call_tool("upstream", "test_update_watched_resource", {"content": f"version {attempt}"})
            if await notifications.wait(0.2):
                break
        # Whatever else comes in within a moment (a second copy would be right behind the first).
        await notifications.wait(0.5)
        seen = [n.method for n in notifications.drain() if n.method == "notifications/resources/updated"]
        assert seen == ["notifications/resources/updated"]
    finally:
        await hub.close_all()
