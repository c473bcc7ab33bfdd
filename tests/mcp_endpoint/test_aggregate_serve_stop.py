"""`manage.py serve --demo` with an agent connected to `/mcp/` (a 2025-era session with its GET stream open, and a
2026-era listen stream): SIGTERM still stops everything cleanly and promptly, with no child left behind."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.demo_process import descendants, is_alive, running_demo


def _token(base_url: str, username: str, password: str) -> str:
    request = urllib.request.Request(
        f"{base_url}/api/auth/token/",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["token"]


def test_sigterm_stops_the_demo_cleanly_while_agents_are_connected(tmp_path: Path):
    with running_demo(tmp_path) as demo:
        token = _token(demo.base_url, demo.username, demo.password)
        url = f"{demo.base_url}/mcp/"
        children: set[int] = set()
        outcome: dict[str, object] = {}

        async def connected_agents() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as legacy_http,
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as modern_http,
                Client(
                    streamable_http_client(url, http_client=legacy_http), mode="legacy", read_timeout_seconds=30
                ) as legacy,
                Client(streamable_http_client(url, http_client=modern_http), read_timeout_seconds=30) as modern,
            ):
                with anyio.fail_after(30):  # the demo's exchanges come online in the background
                    while not (await legacy.list_tools()).tools:  # noqa: ASYNC110 - polling the server's list
                        await anyio.sleep(0.2)
                outcome["legacy_tools"] = len((await legacy.list_tools()).tools)
                async with modern.listen(tools_list_changed=True):
                    outcome["modern_tools"] = len((await modern.list_tools()).tools)
                    children.update(descendants(demo.process.pid))
                    started = time.monotonic()
                    demo.process.send_signal(signal.SIGTERM)
                    # The server ends the sessions; the process must not wait for the agents to hang up.
                    await anyio.to_thread.run_sync(demo.process.wait, 30)
                    outcome["stopped_after"] = time.monotonic() - started

        try:
            anyio.run(connected_agents)
        except BaseException as error:  # noqa: BLE001 - the agents' transports may fail once the server is gone
            outcome.setdefault("agent_error", repr(error))
        rest = demo.process.communicate(timeout=40)[0]
        assert "Stopped cleanly." in rest, "".join(demo.output) + rest
        assert "stopped_after" in outcome, outcome
        assert outcome["stopped_after"] < 15, outcome
        print("stopped after", outcome)
        assert outcome["legacy_tools"] and outcome["modern_tools"], outcome
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and [pid for pid in children if is_alive(pid)]:
            time.sleep(0.1)
        assert not [pid for pid in children if is_alive(pid)], children
