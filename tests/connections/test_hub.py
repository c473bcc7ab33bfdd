"""Hub membership: ensure / restart on change / remove / close_all, waiting for connects, one-shot clients."""

from __future__ import annotations

import asyncio
import time

import pytest

from mcp_client import (
    ConnectionHub,
    ServerTarget,
    ServerUnavailable,
    discover_once,
    open_client,
)

from .conftest import FAST_BACKOFF
from .helpers import EVERYTHING, MARKER_ENV, NODE, await_until, free_port, marked_pids, pid_alive, stdio_target


async def test_ensure_is_idempotent_and_restarts_on_change(hub: ConnectionHub, marker: str) -> None:
    target = stdio_target("s1", "garbage", marker, "--mode", "noise")
    first = await hub.ensure(target)
    status = await first.wait_connected(10)
    # An equal target (built separately) is a no-op: same connection, same process.
    again = await hub.ensure(stdio_target("s1", "garbage", marker, "--mode", "noise"))
    assert again is first and first.status().pid == status.pid

    changed = stdio_target("s1", "garbage", marker, "--mode", "noise", request_timeout=3.0)
    restarted = await hub.ensure(changed)
    assert restarted is not first and hub.get("s1") is restarted
    assert first.state == "stopped" and not pid_alive(status.pid)  # old child gone by the time ensure returns
    new_status = await restarted.wait_connected(10)
    assert new_status.pid != status.pid and restarted.target.request_timeout == 3.0
    assert marked_pids(marker) == [new_status.pid]

    assert await hub.remove("s1")
    assert marked_pids(marker) == [] and hub.get("s1") is None
    assert not await hub.remove("s1")
    with pytest.raises(ServerUnavailable, match="not connected"):
        await hub.call_tool("s1", "echo", {"text": "x"})


async def test_calls_wait_for_a_connect_in_progress(hub: ConnectionHub, marker: str) -> None:
    await hub.ensure(stdio_target("fresh", "garbage", marker, "--mode", "noise"))
    assert hub.statuses()["fresh"].state == "connecting"
    caps = (await hub.discover("fresh")).result  # waits for the session instead of failing
    assert caps.tool_names == ["echo"] and caps.era == "handshake"
    await hub.ensure(stdio_target("fresh2", "garbage", marker, "--mode", "noise"))
    assert ((await hub.call_tool("fresh2", "echo", {"text": "x"})).result).text == "x"


async def test_close_all_stops_every_child(marker: str) -> None:
    hub = ConnectionHub(backoff=FAST_BACKOFF)
    everything = ServerTarget(
        key="every", transport="stdio", command=str(NODE), args=(str(EVERYTHING), "stdio"), env={MARKER_ENV: marker}
    )
    targets = [stdio_target(f"n{i}", "garbage", marker, "--mode", "noise") for i in range(3)] + [everything]
    for target in targets:
        await hub.ensure(target)
    statuses = await asyncio.gather(*(hub.wait_connected(t.key, 20) for t in targets))
    pids = {s.pid for s in statuses}
    assert None not in pids and len(pids) == 4 and set(marked_pids(marker)) == pids
    await hub.close_all()
    assert marked_pids(marker) == [] and not any(pid_alive(pid) for pid in pids)
    assert hub.statuses() == {}
    with pytest.raises(RuntimeError, match="closed"):
        await hub.ensure(targets[0])


async def test_one_shot_client_and_discovery(marker: str) -> None:
    target = stdio_target("once", "garbage", marker, "--mode", "noise")
    caps = await discover_once(target)
    assert caps.tool_names == ["echo"] and caps.server_info == {"name": "garbage-noise", "version": "0.0.1"}
    async with open_client(target) as client:
        assert len(marked_pids(marker)) == 1
        result = await client.call_tool("echo", {"text": "direct"})
        assert result.content[0].text == "direct"
    assert marked_pids(marker) == []

    nowhere = ServerTarget(key="nowhere", transport="http", url=f"http://127.0.0.1:{free_port()}/mcp")
    with pytest.raises(ServerUnavailable, match="'nowhere'.*connect failed"):
        await discover_once(nowhere)
    hung = stdio_target("mute", "garbage", marker, "--mode", "nonjson", connect_timeout=0.5)
    with pytest.raises(ServerUnavailable, match="timed out after 0.5s"):
        await discover_once(hung)


async def test_remove_during_connect_and_hard_stop_leave_no_process(marker: str) -> None:
    # A server that never completes the handshake: remove() aborts the connect instead of waiting it out.
    hub = ConnectionHub(backoff=FAST_BACKOFF, stop_timeout=0.5)
    try:
        await hub.ensure(stdio_target("mute", "garbage", marker, "--mode", "nonjson", connect_timeout=30))
        assert await await_until(lambda: len(marked_pids(marker)) == 1, 10.0)  # spawned, stuck in the handshake
        started = time.perf_counter()
        await hub.remove("mute")
        assert time.perf_counter() - started < 3.0
        assert marked_pids(marker) == []

        # A server that ignores the end of its stdin outlives the SDK's 2 s grace; with stop_timeout=0.5 the
        # owner is cancelled mid-shutdown and the layer's pid safety net kills the process group.
        connection = await hub.ensure(stdio_target("stubborn", "garbage", marker, "--mode", "stubborn"))
        pid = (await connection.wait_connected(10)).pid
        assert pid is not None and pid_alive(pid)
        started = time.perf_counter()
        await hub.remove("stubborn")
        assert time.perf_counter() - started < 2.0
        assert not pid_alive(pid) and marked_pids(marker) == []
    finally:
        await hub.close_all()
