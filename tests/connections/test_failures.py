"""Servers that die, hang, answer garbage or are not there: the layer must stay up and heal itself."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from mcp_client import (
    CallOutcome,
    ConnectionHub,
    ConnectionLost,
    ConnectionStatus,
    RequestTimedOut,
    ServerTarget,
    ServerUnavailable,
)

from .conftest import FAST_BACKOFF
from .helpers import await_until, free_port, marked_pids, pid_alive, stdio_target


async def test_stdio_server_killed_mid_session_reconnects(
    hub: ConnectionHub, marker: str, outcomes: list[CallOutcome]
) -> None:
    connection = await hub.ensure(stdio_target("dying", "dying", marker))
    first = await connection.wait_connected(20)
    old_pid = ((await hub.call_tool("dying", "pid")).result).structured_content["result"]
    assert old_pid == first.pid

    with pytest.raises(ConnectionLost, match="'dying'"):
        await hub.call_tool("dying", "crash")  # os._exit in the middle of the request
    # Until the new session is up, calls fail fast instead of hanging.
    started = time.perf_counter()
    with pytest.raises((ServerUnavailable, ConnectionLost)):
        await hub.call_tool("dying", "echo", {"text": "too early"})
    assert time.perf_counter() - started < 1.0

    second = await connection.wait_connected(20)  # the layer reconnects on its own
    assert second.sessions == 2 and second.pid != old_pid
    new_pid = ((await hub.call_tool("dying", "pid")).result).structured_content["result"]
    assert new_pid != old_pid and not pid_alive(old_pid)
    assert ((await hub.call_tool("dying", "echo", {"text": "back"})).result).text == "back"

    kinds = [(o.target_name, o.error_kind) for o in outcomes]
    assert kinds[:2] == [("pid", None), ("crash", "connection_lost")]
    assert kinds[2][1] in ("unavailable", "connection_lost")
    assert kinds[-2:] == [("pid", None), ("echo", None)]

    # An idle session whose server dies is noticed without any call (the transport watcher sees EOF).
    states = hub.streams.states.subscribe(name="test")
    os.kill(new_pid, signal.SIGKILL)
    assert await await_until(lambda: any(status.state == "backoff" for status in states.drain()), 5.0)
    third = await connection.wait_connected(20)
    assert third.sessions == 3 and third.pid not in (old_pid, new_pid)
    assert ((await hub.call_tool("dying", "echo", {"text": "third"})).result).text == "third"
    assert len(marked_pids(marker)) == 1


async def test_hung_tool_times_out_and_the_session_keeps_working(
    hub: ConnectionHub, marker: str, outcomes: list[CallOutcome]
) -> None:
    connection = await hub.ensure(stdio_target("hang", "hanging", marker, request_timeout=0.5))
    await connection.wait_connected(20)
    started = time.perf_counter()
    hung, hard, echo = await asyncio.gather(
        hub.call_tool("hang", "hang"),
        hub.call_tool("hang", "hang_hard", {"seconds": 1.5}, timeout=0.8),
        hub.call_tool("hang", "echo", {"text": "still here"}),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    assert isinstance(hung, RequestTimedOut) and hung.timeout == 0.5
    assert isinstance(hard, RequestTimedOut) and "0.8s" in str(hard)
    assert echo.result.text == "still here"
    assert 0.75 <= elapsed < 2.0
    # Not wedged: the session is the same one and answers again.
    assert connection.status().sessions == 1 and connection.state == "connected"
    assert ((await hub.call_tool("hang", "echo", {"text": "again"})).result).text == "again"
    timeouts = [o for o in outcomes if o.error_kind == "timeout"]
    assert len(timeouts) == 2 and all(o.latency_ms >= 450 for o in timeouts)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("nonjson", "unparseable"),  # never completes a handshake
        ("exit", "closed the connection"),  # prints garbage and exits
    ],
)
async def test_garbage_servers_give_clear_errors_and_do_not_hurt_others(
    hub: ConnectionHub, marker: str, mode: str, expected: str
) -> None:
    good = await hub.ensure(stdio_target("good", "garbage", marker, "--mode", "noise"))
    bad = await hub.ensure(stdio_target("bad", "garbage", marker, "--mode", mode, connect_timeout=1.0))
    with pytest.raises(ServerUnavailable) as excinfo:
        await bad.wait_connected(10, fail_in_backoff=True)
    assert "'bad'" in str(excinfo.value)
    assert expected in (bad.status().last_error or "")
    # Fails fast while it backs off; the good server on the same hub is unaffected.
    with pytest.raises(ServerUnavailable):
        await hub.call_tool("bad", "echo", {"text": "x"})
    await good.wait_connected(20)
    assert ((await hub.call_tool("good", "echo", {"text": "ok"})).result).text == "ok"
    await hub.remove("bad")
    assert marked_pids(marker) == [good.status().pid]  # only the good server is left


async def test_unreachable_url_backs_off_with_growing_delays(hub: ConnectionHub, outcomes: list[CallOutcome]) -> None:
    states = hub.streams.states.subscribe(name="test")
    seen: list[ConnectionStatus] = []
    target = ServerTarget(key="nowhere", transport="http", url=f"http://127.0.0.1:{free_port()}/mcp")
    connection = await hub.ensure(target)
    backoffs: list[ConnectionStatus] = []
    deadline = time.monotonic() + 5
    while len(backoffs) < 4 and time.monotonic() < deadline:
        seen.extend(states.drain())
        backoffs = [s for s in seen if s.state == "backoff" and s.next_retry_at is not None]
        await asyncio.sleep(0.05)
    assert len(backoffs) >= 4
    delays = [(s.next_retry_at - s.last_error_at).total_seconds() for s in backoffs[:4]]
    # initial 0.1 s doubling (+-10 % jitter), capped at 0.8 s
    for n, delay in enumerate(delays, start=1):
        expected = min(FAST_BACKOFF.maximum, FAST_BACKOFF.initial * 2 ** (n - 1))
        assert expected * 0.85 <= delay <= expected * 1.15, delays
    assert [s.consecutive_failures for s in backoffs[:4]] == [1, 2, 3, 4]
    status = connection.status()
    assert status.last_error and "Connect" in status.last_error
    assert status.sessions == 0

    started = time.perf_counter()
    with pytest.raises(ServerUnavailable) as excinfo:
        await hub.call_tool("nowhere", "echo", {"text": "x"})
    if connection.state == "backoff":
        assert time.perf_counter() - started < 0.05  # fast, nothing sent
    assert "'nowhere'" in str(excinfo.value)
    assert outcomes[-1].error_kind == "unavailable"
    with pytest.raises(ServerUnavailable):
        await hub.discover("nowhere")


async def test_a_subscriber_whose_filter_raises_does_not_break_the_layer(marker: str) -> None:
    def explode(item: object) -> bool:
        raise RuntimeError("subscriber bug")

    hub = ConnectionHub(backoff=FAST_BACKOFF)
    for stream in (hub.streams.states, hub.streams.outcomes, hub.streams.notifications):
        stream.subscribe(name="broken", accept=explode)
    healthy = hub.streams.outcomes.subscribe(name="healthy")
    try:
        await hub.ensure(stdio_target("cb", "garbage", marker, "--mode", "noise"))
        await hub.wait_connected("cb", 20)
        assert ((await hub.call_tool("cb", "echo", {"text": "fine"})).result).text == "fine"
        assert [outcome.target_name for outcome in healthy.drain()] == ["echo"]
    finally:
        await hub.close_all()
    assert marked_pids(marker) == []


async def test_unknown_key_is_unavailable(hub: ConnectionHub) -> None:
    with pytest.raises(ServerUnavailable, match="not connected"):
        await hub.call_tool("missing", "echo")
