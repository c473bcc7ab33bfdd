"""Hostile servers' answers are bounded (issue 15, finding 1): a server answering 50 MB, results over the result
limit, a flood of notifications. Real servers over the real protocol (tests/mcp_servers/oversized.py, built on the
SDK's MCPServer), while the test measures this process's resident memory and a well-behaved neighbour's latency.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import time
from collections.abc import Callable

import pytest

from mcp_client import CallOutcome, ConnectionHub, InvalidResponse, ServerConnection, ServerTarget
from mcp_client.limits import MIB, Framer, InboundGuard, Limits, Oversized, read_head

from .conftest import Received
from .helpers import HttpServer, await_until, python_http_server, stdio_target

# Also the legacy SSE client's own bound on an event (httpx2's 1 MiB), which caps ours there: one limit for all four.
LIMIT = 1 * MIB
LIMITS = Limits(max_message_bytes=LIMIT, max_result_bytes=512 * 1024)
TOO_LARGE = re.compile(r"answer too large \((\d+) bytes, limit (\d+)\)")


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/self/status")


def _reset_peak_memory() -> None:
    """Start VmHWM (the peak resident size) over from the current size, so it measures only what follows."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


async def _hostile(
    hub: ConnectionHub, transport: str, marker: str, http_servers: list[HttpServer], **options: object
) -> ServerConnection:
    limits = options.pop("inbound_limits", LIMITS)
    if transport == "stdio":
        target = stdio_target("hostile", "oversized", marker, inbound_limits=limits, request_timeout=60, **options)
    else:
        server = python_http_server("oversized", "sse" if transport == "sse" else "streamable-http", marker)
        if transport == "http-json":
            server.env["JSON_RESPONSE"] = "1"
        http_servers.append(server)
        await asyncio.to_thread(server.start)
        kind = "sse" if transport == "sse" else "http"
        target = ServerTarget(
            key="hostile",
            transport=kind,
            url=server.url,
            inbound_limits=limits,
            request_timeout=60,
            **options,  # type: ignore[arg-type]
        )
    connection = await hub.ensure(target)
    await connection.wait_connected(20)
    return connection


async def _neighbour(hub: ConnectionHub, marker: str) -> None:
    connection = await hub.ensure(stdio_target("neighbour", "well_behaved", marker))
    await connection.wait_connected(20)
    for _ in range(5):  # warm up
        await hub.call_tool("neighbour", "echo", {"text": "warm"})


async def _echo_latencies(
    hub: ConnectionHub, *, count: int = 0, until: Callable[[], bool] | None = None
) -> list[float]:
    """The neighbour's echo latencies: `count` of them, or as many as fit until `until()` holds."""
    latencies: list[float] = []
    while (until is not None and not until()) or len(latencies) < count:
        started = time.perf_counter()
        answer = await hub.call_tool("neighbour", "echo", {"text": "still here"})
        latencies.append(time.perf_counter() - started)
        assert answer.result.text == "still here"
        await asyncio.sleep(0.01)
    return latencies


def _assert_not_slowed(baseline: list[float], during: list[float]) -> None:
    before, now = statistics.median(baseline), statistics.median(during)
    # Generous: the machine is shared; before the limits one 50 MB answer took others from 0.03 to 0.5 s.
    assert now < max(4 * before, before + 0.02), f"neighbour p50 {now * 1e3:.1f} ms, was {before * 1e3:.1f} ms"


# -- 50 MB answers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http-events", "http-json", "sse"])
async def test_it_refuses_six_50_mb_answers_without_holding_them_and_nobody_else_waits(
    hub: ConnectionHub, marker: str, http_servers: list[HttpServer], transport: str
) -> None:
    hostile = await _hostile(hub, transport, marker, http_servers)
    await _neighbour(hub, marker)
    baseline = await _echo_latencies(hub, count=30)

    _reset_peak_memory()
    before = _status_bytes("VmRSS")
    calls = [asyncio.create_task(hub.call_tool("hostile", "huge", {"size_mb": 50})) for _ in range(6)]
    during = await _echo_latencies(hub, count=10, until=lambda: all(call.done() for call in calls))
    grown = _status_bytes("VmHWM") - before

    for call in calls:
        error = call.exception()
        assert isinstance(error, InvalidResponse), repr(error)
        match = TOO_LARGE.search(str(error))
        assert match is not None, str(error)
        assert int(match[1]) > 50 * MIB and int(match[2]) == LIMIT
        assert error.outcome is not None and error.outcome.error_kind == "invalid_response"
    # Six answers of 50 MB held whole would be 300 MB and more (1 GB was seen); bounded reading holds one limit's
    # worth per stream at most, and gives it back.
    assert grown < 3 * LIMIT, f"resident memory grew by {grown / MIB:.1f} MiB"
    _assert_not_slowed(baseline, during)

    # The same session goes on.
    assert (await hub.call_tool("hostile", "small", {})).result.text == "small"
    assert hostile.status().sessions == 1 and hostile.state == "connected"
    assert hostile.inbound.refused_answers == 6


async def test_it_refuses_results_over_the_result_limit_and_the_session_goes_on(
    hub: ConnectionHub, marker: str, outcomes: Received[CallOutcome]
) -> None:
    hostile = await _hostile(hub, "stdio", marker, [])

    # Under the message limit (1 MiB), over the result limit (512 KiB): refused once parsed, before it is copied.
    with pytest.raises(InvalidResponse, match=r"tools/call: answer too large \(786432 bytes, limit 524288\)"):
        await hub.call_tool("hostile", "huge", {"size_mb": 0.75})
    with pytest.raises(InvalidResponse, match=r"answer too large \(more than \d+ bytes, limit 524288\)"):
        await hub.call_tool("hostile", "huge_structured", {"size_mb": 0.2})
    with pytest.raises(InvalidResponse, match=r"resources/read: answer too large \(614400 bytes, limit 524288\)"):
        await hub.read_resource("hostile", "big://600")

    assert (await hub.read_resource("hostile", "big://1")).result.text == "y" * 1024
    assert (await hub.call_tool("hostile", "small", {})).result.text == "small"
    assert hostile.status().sessions == 1
    kinds = [outcome.error_kind for outcome in outcomes if outcome.server_key == "hostile"]
    assert kinds.count("invalid_response") == 3


@pytest.mark.django_db(transaction=True)
def test_the_call_api_answers_502_with_the_too_large_text(operator_api, settings) -> None:  # type: ignore[no-untyped-def]
    from registry.discovery import discover_and_record
    from registry.services import server_create

    settings.MCP_MAX_MESSAGE_BYTES = LIMIT
    server = server_create(
        name="hostile-api",
        transport="stdio",
        command=sys.executable,
        args=[str(settings.BASE_DIR / "tests" / "mcp_servers" / "oversized.py")],
        request_timeout_seconds=60,
    )
    assert discover_and_record(server=server)["ok"]

    response = operator_api.post(
        "/api/servers/hostile-api/call/", {"tool": "huge", "arguments": {"size_mb": 50}}, format="json"
    )
    assert response.status_code == 502, response.content[:300]
    body = response.json()
    match = TOO_LARGE.search(body["detail"])
    assert match is not None and int(match[1]) > 50 * MIB and int(match[2]) == LIMIT, body["detail"]
    assert body["outcome"]["error_kind"] == "invalid_response"

    again = operator_api.post("/api/servers/hostile-api/call/", {"tool": "small", "arguments": {}}, format="json")
    assert again.status_code == 200 and again.json()["result"]["content"][0]["text"] == "small"


# -- notification floods -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http-events"])
async def test_it_drops_a_notification_flood_beyond_the_rate_and_others_keep_answering(
    hub: ConnectionHub,
    marker: str,
    http_servers: list[HttpServer],
    notifications: Received[tuple[str, str, dict]],
    transport: str,
) -> None:
    rate, burst, sent = 50.0, 100, 3000
    limits = Limits(notifications_per_second=rate, notification_burst=burst)
    # The handshake era: MCPServer sends log notifications to a client of that era.
    hostile = await _hostile(hub, transport, marker, http_servers, inbound_limits=limits, mode="legacy")
    await _neighbour(hub, marker)
    baseline = await _echo_latencies(hub, count=30)

    started = time.monotonic()
    flood = asyncio.create_task(hub.call_tool("hostile", "flood", {"count": sent}))
    during = await _echo_latencies(hub, count=10, until=flood.done)
    elapsed = time.monotonic() - started
    assert (await flood).result.text == str(sent)

    dropped = hostile.inbound.dropped_notifications

    def logged() -> list[tuple[str, str, dict]]:
        return [item for item in notifications if item[0] == "hostile" and item[1] == "notifications/message"]

    assert await await_until(lambda: len(logged()) == sent - dropped, 10), (len(logged()), sent, dropped)
    # What got through is what the bucket allows: the burst, then the rate.
    assert dropped > 0 and len(logged()) <= burst + rate * elapsed + 1, (len(logged()), dropped, elapsed)
    _assert_not_slowed(baseline, during)
    assert (await hub.call_tool("hostile", "small", {})).result.text == "small"
    assert hostile.status().sessions == 1


# -- the framer and what an oversized message says ------------------------------------------------------------------


def _chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[index : index + size] for index in range(0, len(data), size)]


def test_the_framer_holds_at_most_the_limit_of_a_line_and_keeps_its_id() -> None:
    framer = Framer(64 * 1024, discard_limit=10**8)
    big = b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"' + b"x" * 5_000_000 + b'"}]}}'
    frames = []
    for chunk in _chunks(b'{"jsonrpc":"2.0","method":"notifications/x"}\n' + big + b"\n" + b'{"id":8}\n'):
        frames.extend(framer.feed(chunk))
        assert sum(len(part) for part in framer._parts) <= 64 * 1024  # never more than the limit held
    assert frames[0] == b'{"jsonrpc":"2.0","method":"notifications/x"}' and frames[2] == b'{"id":8}'
    oversized = frames[1]
    assert isinstance(oversized, Oversized) and oversized.size == len(big) and not oversized.cut
    assert read_head(oversized.head, oversized.tail).request_id == 7


def test_an_oversized_message_is_read_for_its_id_at_either_end_and_a_notification_is_dropped() -> None:
    guard = InboundGuard("hostile", Limits(max_message_bytes=64 * 1024))
    id_last = Oversized(10**6, b'{"result":{"content":[{"text":"xxxx', b'xxxx"}]},"jsonrpc":"2.0","id":"abc"}')
    message = guard.refused_message(id_last)
    assert message is not None and message.message.id == "abc"
    assert message.message.error.message == "answer too large (1000000 bytes, limit 65536)"  # type: ignore[union-attr]
    notification = Oversized(10**6, b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"xx', b"}")
    assert guard.refused_message(notification) is None
    assert (guard.refused_answers, guard.dropped_oversized) == (1, 1)


def test_the_framer_splits_events_on_any_line_end_even_across_chunks() -> None:
    framer = Framer(1024, events=True)
    stream = (
        b'event: message\r\ndata: {"id":1}\r\n\r\n: ping\r\r'
        + b"data: "
        + b"z" * 5000
        + b"\n\nevent: message\ndata: 2\n\n"
    )
    frames = []
    for index in range(len(stream)):  # one byte at a time: every line end split every way
        frames.extend(framer.feed(stream[index : index + 1]))
    assert frames[0] == b'event: message\ndata: {"id":1}\n\n' and frames[1] == b": ping\n\n"
    assert isinstance(frames[2], Oversized) and frames[2].size == len(b"data: ") + 5000 + 2
    assert frames[3] == b"event: message\ndata: 2\n\n" and len(frames) == 4


def test_a_line_without_end_is_given_up_after_the_discard_limit() -> None:
    framer = Framer(64 * 1024, discard_limit=1_000_000)
    frames = []
    for chunk in _chunks(b'{"id":3,"result":"' + b"x" * 2_000_000):
        frames.extend(framer.feed(chunk))
        if framer.cut:
            break
    assert len(frames) == 1 and isinstance(frames[0], Oversized) and frames[0].cut
    assert 1_000_000 < frames[0].size <= 1_000_000 + 65536
    assert read_head(frames[0].head, frames[0].tail).request_id == 3
