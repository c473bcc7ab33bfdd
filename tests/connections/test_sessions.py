"""Live sessions over stdio with well-behaved servers: ours, mcp-server-time (2026-07-28), server-everything
(2025-11-25). Discovery, calls, resources, probes, outcomes, notifications."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from mcp_client import (
    CallOutcome,
    ConnectionHub,
    InvalidResponse,
    ServerError,
    ServerTarget,
)

from .helpers import EVERYTHING, MARKER_ENV, NODE, TIME_SERVER, await_until, marked_pids, stdio_target


async def test_well_behaved_stdio_end_to_end(hub: ConnectionHub, marker: str, outcomes: list[CallOutcome]) -> None:
    connection = await hub.ensure(stdio_target("wb", "well_behaved", marker))
    status = await connection.wait_connected(20)
    assert status.state == "connected"
    assert status.era == "modern" and status.protocol_version == "2026-07-28"
    assert status.server_info == {"name": "well-behaved", "version": "1.0.0"}
    assert status.pid is not None and status.pid in marked_pids(marker)

    caps = (await hub.discover("wb")).result
    assert set(caps.tool_names) == {"echo", "add", "fail", "slow", "concurrency", "touch", "change_tools", "grow_tools"}
    add = next(tool for tool in caps.tools if tool["name"] == "add")
    assert add["inputSchema"]["required"] == ["a", "b"]
    assert add["outputSchema"]["properties"]["total"]["type"] == "integer"  # wire names kept (by_alias)
    assert [r["uri"] for r in caps.resources] == ["test://greeting"]
    assert [p["name"] for p in caps.prompts] == ["greet"]
    assert caps.resource_templates == []
    assert caps.instructions == "A friendly test server."
    assert caps.to_dict()["era"] == "modern"

    echo = (await hub.call_tool("wb", "echo", {"text": "hello"})).result
    assert echo.text == "hello" and not echo.is_error
    total = (await hub.call_tool("wb", "add", {"a": 2, "b": 40})).result
    assert total.structured_content == {"total": 42}

    failed = (await hub.call_tool("wb", "fail", {"message": "nope"})).result
    assert failed.is_error and "nope" in failed.text  # returned, not raised

    # MCPServer reports an unknown tool as an isError result (mcp-server-time answers -32602, see below).
    unknown = (await hub.call_tool("wb", "no_such_tool", {})).result
    assert unknown.is_error and "Unknown tool" in unknown.text

    resource = (await hub.read_resource("wb", "test://greeting")).result
    assert resource.text == "hello from well-behaved"

    latency = (await hub.probe("wb")).result
    assert 0 < latency < 5000

    kinds = [(o.operation, o.target_name, o.ok, o.error_kind) for o in outcomes]
    assert kinds == [
        ("discover", "", True, None),
        ("tools/call", "echo", True, None),
        ("tools/call", "add", True, None),
        ("tools/call", "fail", False, "tool_error"),
        ("tools/call", "no_such_tool", False, "tool_error"),
        ("resources/read", "test://greeting", True, None),
        ("probe", "", True, None),
    ]
    assert all(o.server_key == "wb" and o.latency_ms > 0 and o.started_at.tzinfo is not None for o in outcomes)
    assert "nope" in outcomes[3].error_message

    pid = status.pid
    assert await hub.remove("wb")
    assert marked_pids(marker) == []
    assert not connection.running and connection.state == "stopped"
    assert pid not in marked_pids(marker)


async def test_mcp_server_time_modern_era(hub: ConnectionHub, marker: str, outcomes: list[CallOutcome]) -> None:
    target = ServerTarget(key="time", transport="stdio", command=str(TIME_SERVER), env={MARKER_ENV: marker})
    await hub.ensure(target)
    caps = (await hub.discover("time")).result
    assert caps.era == "modern" and caps.protocol_version == "2026-07-28"
    assert sorted(caps.tool_names) == ["convert_time", "get_current_time"]
    assert caps.prompts == [] and caps.resources == []  # not declared: listed as empty, no -32601

    # ping is gone in this era: the probe must still work (it uses server/discover there).
    assert (await hub.probe("time")).result > 0
    connection = hub.get("time")
    assert connection is not None
    with pytest.raises(ServerError) as ping:
        await connection.request("ping", "", lambda client: client.session.send_ping())
    assert ping.value.code == -32601

    now = (await hub.call_tool("time", "get_current_time", {"timezone": "UTC"})).result
    assert not now.is_error and "UTC" in now.text

    with pytest.raises(ServerError) as unknown:
        await hub.call_tool("time", "no_such_tool", {})
    assert unknown.value.code == -32602 and "'time'" in str(unknown.value)
    assert hub.statuses()["time"].state == "connected"  # a JSON-RPC error leaves the session alone
    assert [(o.ok, o.error_kind) for o in outcomes] == [
        (True, None),
        (True, None),
        (False, "server_error"),
        (True, None),
        (False, "server_error"),
    ]


async def test_server_everything_handshake_era(
    hub: ConnectionHub, marker: str, notifications: list[tuple[str, str, dict]]
) -> None:
    target = ServerTarget(
        key="every", transport="stdio", command=str(NODE), args=(str(EVERYTHING), "stdio"), env={MARKER_ENV: marker}
    )
    await hub.ensure(target)
    caps = (await hub.discover("every")).result
    assert caps.era == "handshake" and caps.protocol_version == "2025-11-25"
    # 13 tools, plus 2 that server-everything offers only to a client that declares elicitation, 1 for sampling and
    # 1 for roots (we declare all three: the pass-through relays them to agents).
    assert (len(caps.tools), len(caps.resources), len(caps.prompts)) == (17, 7, 4)
    assert {"trigger-elicitation-request", "trigger-url-elicitation"} <= set(caps.tool_names)
    assert {"trigger-sampling-request", "get-roots-list"} <= set(caps.tool_names)
    assert caps.server_info is not None and caps.server_info["name"] == "mcp-servers/everything"
    # Its form asks for required fields without defaults: the policy declines (a real third-party elicitation).
    asked = (await hub.call_tool("every", "trigger-elicitation-request", {})).result
    assert "declined" in asked.text

    assert (await hub.probe("every")).result > 0  # ping
    echo = (await hub.call_tool("every", "echo", {"message": "hi"})).result
    assert echo.text == "Echo: hi"

    # server-everything announces tools/list_changed right after initialisation (handshake-era notification).
    assert await await_until(lambda: any(kind == "notifications/tools/list_changed" for _, kind, _ in notifications))
    assert all(key == "every" for key, _, _ in notifications)


async def test_concurrency_bound_is_respected(hub: ConnectionHub, marker: str) -> None:
    connection = await hub.ensure(stdio_target("slow", "well_behaved", marker, max_concurrency=2))
    await connection.wait_connected(20)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, connection.status().in_flight)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(hub.call_tool("slow", "slow", {"seconds": 0.3}) for _ in range(6)))
    watcher.cancel()
    # Observed on the server side: never more than 2 tool calls at once, although 6 were issued together.
    server_view = (await hub.call_tool("slow", "concurrency", {})).result
    assert server_view.structured_content == {"in_flight": 0, "max_in_flight": 2}
    assert max(r.result.structured_content["max_in_flight"] for r in results) == 2
    assert peak == 2


async def test_invalid_results_do_not_break_the_session(hub: ConnectionHub, marker: str) -> None:
    await hub.ensure(stdio_target("bad", "garbage", marker, "--mode", "badresult"))
    await hub.wait_connected("bad", 20)
    with pytest.raises(InvalidResponse, match="'bad'"):
        await hub.call_tool("bad", "echo", {"text": "x"})
    assert hub.statuses()["bad"].state == "connected"
    assert (await hub.probe("bad")).result > 0  # the same session still answers


async def test_noisy_stdout_is_skipped(hub: ConnectionHub, marker: str) -> None:
    await hub.ensure(stdio_target("noise", "garbage", marker, "--mode", "noise"))
    await hub.wait_connected("noise", 20)
    result = (await hub.call_tool("noise", "echo", {"text": "through the noise"})).result
    assert result.text == "through the noise"
    status = hub.statuses()["noise"]
    assert status.state == "connected" and status.stream_errors >= 2


async def test_notifications_in_both_eras(
    hub: ConnectionHub, marker: str, notifications: list[tuple[str, str, dict]], outcomes: list[CallOutcome]
) -> None:
    """resources/updated and list_changed reach on_notification: via subscriptions/listen on 2026-07-28,
    via resources/subscribe + the message handler on the handshake era — and again after a reconnect."""
    modern = await hub.ensure(stdio_target("modern", "well_behaved", marker))
    legacy = await hub.ensure(stdio_target("legacy", "garbage", marker, "--mode", "noise"))
    await asyncio.gather(modern.wait_connected(20), legacy.wait_connected(20))
    await hub.subscribe_resources("modern", ["test://greeting"])
    await hub.subscribe_resources("legacy", ["test://a", "test://b"])
    assert legacy.subscriptions == {"test://a", "test://b"}

    def seen(key: str, kind: str, uri: str | None = None) -> bool:
        return any(k == key and n == kind and (uri is None or p.get("uri") == uri) for k, n, p in notifications)

    async def touch_until_seen() -> bool:
        # The listen stream is (re)opened in the background; touch until its first event arrives.
        for _ in range(50):
            await hub.call_tool("modern", "touch", {"uri": "test://greeting"})
            if await await_until(lambda: seen("modern", "notifications/resources/updated", "test://greeting"), 0.1):
                return True
        return False

    assert await touch_until_seen()
    await hub.call_tool("modern", "change_tools")
    assert await await_until(lambda: seen("modern", "notifications/tools/list_changed"))

    await hub.call_tool("legacy", "echo", {"text": "x"})
    assert await await_until(lambda: seen("legacy", "notifications/resources/updated", "test://b"))
    await hub.unsubscribe_resources("legacy", ["test://a"])

    # After a reconnect the layer re-subscribes on its own (recorded like any other request).
    notifications.clear()
    outcomes.clear()
    old = legacy.status()
    assert old.pid is not None
    os.kill(old.pid, signal.SIGKILL)
    assert await await_until(lambda: legacy.status().sessions == 2 and legacy.state == "connected", 10)
    assert await await_until(
        lambda: any(o.operation == "resources/subscribe" and o.target_name == "test://b" and o.ok for o in outcomes)
    )
    assert not any(o.target_name == "test://a" for o in outcomes)
    await hub.call_tool("legacy", "echo", {"text": "y"})
    assert await await_until(lambda: seen("legacy", "notifications/resources/updated", "test://b"))
    assert not seen("legacy", "notifications/resources/updated", "test://a")
