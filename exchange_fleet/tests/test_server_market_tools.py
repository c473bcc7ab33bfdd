"""Market-data tools over a real in-process MCP session: quotes, order books, info, errors."""

from datetime import UTC, datetime

import pytest

from exchange_fleet.profiles import profile_by_name
from exchange_fleet.server import SERVER_VERSION
from exchange_fleet.tests.sessions import ManualClock, connect, error_text, make_profile, structured

# A pinned wall-clock start, 0.4 s into a second: late 2025.
T0 = 1_760_000_000.4
QUOTE_PRICE_FIELDS = ("bid", "ask", "last", "size", "mid", "tick", "timestamp", "bid_size", "ask_size")


def unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp()


EXPECTED_TOOLS = {
    "get_quote",
    "get_order_book",
    "reserve_order",
    "confirm_order",
    "cancel_order",
    "get_reservation",
    "get_balances",
    "get_exchange_info",
}


async def test_every_tool_has_an_output_schema_and_server_identifies_itself() -> None:
    async with connect(make_profile()) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == EXPECTED_TOOLS
        assert all(tool.output_schema for tool in tools.values())
        assert tools["get_quote"].annotations is not None and tools["get_quote"].annotations.read_only_hint
        depth = tools["get_order_book"].input_schema["properties"]["depth"]
        assert (depth["minimum"], depth["maximum"], depth["default"]) == (1, 100, 10)
        assert client.instructions and "two-phase" in client.instructions
        assert client.server_info is not None
        assert client.server_info.name == "exchange-testex"
        assert client.server_info.version == SERVER_VERSION


async def test_quote_fields_and_invariants() -> None:
    async with connect(make_profile(taker_fee=0.0015)) as client:
        for symbol in ("BTC-USD", "ETH-USD", "SOL-USD"):
            quote = structured(await client.call_tool("get_quote", {"symbol": symbol}))
            assert quote["symbol"] == symbol and quote["exchange"] == "testex"
            assert 0 < quote["bid"] < quote["ask"]
            assert quote["bid"] <= quote["last"] <= quote["ask"]
            assert quote["size"] > 0 and quote["bid_size"] > 0 and quote["ask_size"] > 0
            assert quote["taker_fee"] == 0.0015
            assert quote["timestamp"].endswith("Z") and "T" in quote["timestamp"]


async def test_quote_time_is_the_time_of_its_tick_not_of_the_call() -> None:
    clock = ManualClock()
    async with connect(make_profile(tick_interval_s=1.0), clock, wall_clock=lambda: T0) as client:
        first = structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        assert first["tick"] == int(T0) and first["timestamp"] == "2025-10-09T08:53:20.000Z"
        assert unix(first["timestamp"]) == int(T0)
        clock.now += 0.5  # later in the same tick: same prices, same time
        assert structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"})) == first
        clock.now += 0.2  # into the next tick
        second = structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        book = structured(await client.call_tool("get_order_book", {"symbol": "BTC-USD", "depth": 1}))
    assert second["tick"] == first["tick"] + 1
    assert unix(second["timestamp"]) == int(T0) + 1
    assert (book["tick"], book["timestamp"]) == (second["tick"], second["timestamp"])


async def test_exchanges_started_at_different_moments_quote_the_same_market() -> None:
    # `early` has been up for 250 s when `late` starts (or restarts): at the same moment both quote the same
    # prices, so a restart cannot open a phantom arbitrage against the exchanges that kept running.
    early_clock, late_clock = ManualClock(), ManualClock(now=9_000.0)
    profile = make_profile(tick_interval_s=1.0)
    async with (
        connect(profile.with_overrides(name="early"), early_clock, wall_clock=lambda: T0) as early,
        connect(profile.with_overrides(name="late"), late_clock, wall_clock=lambda: T0 + 250) as late,
        connect(
            profile.with_overrides(name="biased", price_bias=0.01), late_clock, wall_clock=lambda: T0 + 250
        ) as biased,
    ):
        early_clock.now += 250
        for symbol in ("BTC-USD", "ETH-USD", "SOL-USD"):
            a = structured(await early.call_tool("get_quote", {"symbol": symbol}))
            b = structured(await late.call_tool("get_quote", {"symbol": symbol}))
            c = structured(await biased.call_tool("get_quote", {"symbol": symbol}))
            assert {f: a[f] for f in QUOTE_PRICE_FIELDS} == {f: b[f] for f in QUOTE_PRICE_FIELDS}
            assert a["tick"] == int(T0 + 250)
            assert c["mid"] / a["mid"] == pytest.approx(1.01, rel=2e-4)  # only the exchange's own bias differs


async def test_the_book_agrees_with_the_quote_at_every_depth() -> None:
    async with connect(make_profile(tick_interval_s=1.0), ManualClock()) as client:
        quote = structured(await client.call_tool("get_quote", {"symbol": "ETH-USD"}))
        for depth in (1, 10, 100):
            book = structured(await client.call_tool("get_order_book", {"symbol": "ETH-USD", "depth": depth}))
            assert book["bids"][0] == [quote["bid"], quote["bid_size"]]
            assert book["asks"][0] == [quote["ask"], quote["ask_size"]]
            assert book["tick"] == quote["tick"] and book["timestamp"] == quote["timestamp"]


async def test_bias_shifts_prices_relative_to_reference_at_same_seed() -> None:
    async with (
        connect(make_profile(name="ref", seed=11), ManualClock(), wall_clock=lambda: T0) as reference,
        connect(make_profile(name="biased", seed=11, price_bias=0.005), ManualClock(), wall_clock=lambda: T0) as biased,
    ):
        ref = structured(await reference.call_tool("get_quote", {"symbol": "ETH-USD"}))
        high = structured(await biased.call_tool("get_quote", {"symbol": "ETH-USD"}))
    assert high["mid"] / ref["mid"] == pytest.approx(1.005, rel=2e-4)
    assert high["bid"] > ref["ask"]


async def test_demo_profiles_serve_quotes() -> None:
    # beta quotes ~0.5% above alpha: the demo's fusion layer has something to find.
    alpha = profile_by_name("alpha").with_overrides(base_latency_ms=0, jitter_ms=0, tick_interval_s=3600)
    beta = profile_by_name("beta").with_overrides(base_latency_ms=0, jitter_ms=0, tick_interval_s=3600)
    async with (
        connect(alpha, ManualClock(), wall_clock=lambda: T0) as a,
        connect(beta, ManualClock(), wall_clock=lambda: T0) as b,
    ):
        qa = structured(await a.call_tool("get_quote", {"symbol": "BTC-USD"}))
        qb = structured(await b.call_tool("get_quote", {"symbol": "BTC-USD"}))
    assert qb["mid"] / qa["mid"] == pytest.approx(1.005, rel=2e-4)


async def test_order_book_depth_and_ordering() -> None:
    async with connect(make_profile()) as client:
        book = structured(await client.call_tool("get_order_book", {"symbol": "BTC-USD", "depth": 5}))
        assert book["depth"] == 5 and len(book["bids"]) == len(book["asks"]) == 5
        assert all(len(level) == 2 for level in book["bids"] + book["asks"])
        bids = [price for price, _ in book["bids"]]
        asks = [price for price, _ in book["asks"]]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
        default = structured(await client.call_tool("get_order_book", {"symbol": "BTC-USD"}))
        assert len(default["bids"]) == 10


@pytest.mark.parametrize("depth", [0, 101, "deep"])
async def test_order_book_depth_validation_is_a_tool_error(depth: object) -> None:
    async with connect(make_profile()) as client:
        result = await client.call_tool("get_order_book", {"symbol": "BTC-USD", "depth": depth})
        assert "depth" in error_text(result)


async def test_unknown_symbol_is_a_tool_error_naming_the_listed_symbols() -> None:
    async with connect(make_profile()) as client:
        for tool in ("get_quote", "get_order_book"):
            text = error_text(await client.call_tool(tool, {"symbol": "DOGE-USD"}))
            assert "unknown symbol 'DOGE-USD'" in text and "BTC-USD" in text


async def test_missing_argument_and_unknown_tool_are_tool_errors() -> None:
    async with connect(make_profile()) as client:
        assert "symbol" in error_text(await client.call_tool("get_quote", {}))
        assert "Unknown tool: sell_everything" in error_text(await client.call_tool("sell_everything", {}))


async def test_exchange_info_exposes_fees_and_knobs() -> None:
    profile = make_profile(
        taker_fee=0.002, spread_bps=7, error_rate=0.0, outage_windows=((100.0, 110.0),), lose_confirm_replies=2
    )
    async with connect(profile, ManualClock(), wall_clock=lambda: T0) as client:
        info = structured(await client.call_tool("get_exchange_info", {}))
    assert info["exchange"] == "testex"
    assert info["taker_fee"] == 0.002 and info["spread_bps"] == 7
    assert info["outage_windows"] == [[100.0, 110.0]]
    assert info["in_outage"] is False and info["open_reservations"] == 0
    assert info["symbols"] == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert info["tick"] == int(T0 // 3600) and unix(info["tick_time"]) == info["tick"] * 3600
    assert info["max_book_depth"] == 100 and info["reservation_history"] == 10_000
    assert info["lose_confirm_replies"] == 2 and info["ledger_path"] is None
