"""Simulation knobs over real MCP sessions: latency, error rate, outage windows."""

import asyncio
import time

import pytest
from mcp import MCPError

from exchange_fleet.server import OUTAGE_MESSAGE, SIMULATED_FAILURE_MESSAGE, ticker_uri
from exchange_fleet.tests.sessions import ManualClock, connect, error_text, make_profile, structured


async def test_latency_knob_delays_each_call() -> None:
    async with connect(make_profile(base_latency_ms=200)) as client:
        started = time.monotonic()
        structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        # Loose bound: a sanity check that the knob works, not a timing benchmark.
        assert time.monotonic() - started >= 0.15


async def test_no_latency_knob_is_fast() -> None:
    async with connect(make_profile()) as client:
        started = time.monotonic()
        for _ in range(5):
            structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        assert time.monotonic() - started < 1.0


async def test_error_rate_produces_simulated_tool_errors() -> None:
    async with connect(make_profile(error_rate=0.5, seed=3)) as client:
        results = [await client.call_tool("get_quote", {"symbol": "SOL-USD"}) for _ in range(40)]
    failures = [r for r in results if r.is_error]
    assert 5 <= len(failures) <= 35
    assert all(SIMULATED_FAILURE_MESSAGE in error_text(r) for r in failures)
    assert all(r.structured_content and r.structured_content["bid"] > 0 for r in results if not r.is_error)


async def test_error_rate_one_fails_every_tool_call() -> None:
    async with connect(make_profile(error_rate=1.0)) as client:
        for tool, args in [("get_quote", {"symbol": "BTC-USD"}), ("get_balances", {})]:
            assert SIMULATED_FAILURE_MESSAGE in error_text(await client.call_tool(tool, args))


async def test_outage_window_fails_then_recovers() -> None:
    clock = ManualClock()
    profile = make_profile(outage_windows=((10.0, 20.0),))
    async with connect(profile, clock=clock) as client:
        structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))

        clock.now += 12  # inside the window
        text = error_text(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        assert OUTAGE_MESSAGE in text and "8.0 s" in text
        # Non-tool requests fail as protocol errors.
        with pytest.raises(MCPError) as excinfo:
            await client.read_resource(ticker_uri("testex", "BTC-USD"), cache_mode="refresh")
        assert excinfo.value.code == -32603 and OUTAGE_MESSAGE in excinfo.value.message
        with pytest.raises(MCPError, match="exchange outage"):
            await client.list_resources(cache_mode="refresh")

        clock.now += 8  # window over
        structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        read = await client.read_resource(ticker_uri("testex", "BTC-USD"), cache_mode="refresh")
        assert '"bid"' in read.contents[0].text  # type: ignore[union-attr]


async def test_periodic_outage_recurs() -> None:
    clock = ManualClock()
    profile = make_profile(outage_windows=((5.0, 6.0),), outage_period_s=10.0)
    async with connect(profile, clock=clock) as client:
        for offset, down in [(5.5, True), (1.0, False), (8.6, True), (1.0, False)]:
            clock.now += offset
            result = await client.call_tool("get_exchange_info", {})
            assert result.is_error is down, (clock.now, result.content)


async def test_real_time_outage_from_server_start() -> None:
    # The window is measured from build time; a short real one, end to end.
    async with connect(make_profile(outage_windows=((0.0, 0.4),))) as client:
        assert OUTAGE_MESSAGE in error_text(await client.call_tool("get_quote", {"symbol": "ETH-USD"}))
        deadline = time.monotonic() + 3
        while (result := await client.call_tool("get_quote", {"symbol": "ETH-USD"})).is_error:
            assert time.monotonic() < deadline, "outage never ended"
            await asyncio.sleep(0.05)
        assert structured(result)["symbol"] == "ETH-USD"
