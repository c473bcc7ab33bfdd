"""Market-data tools over a real in-process MCP session: quotes, order books, info, errors."""

import pytest

from exchange_fleet.profiles import profile_by_name
from exchange_fleet.server import SERVER_VERSION
from exchange_fleet.tests.sessions import connect, error_text, make_profile, structured

EXPECTED_TOOLS = {
    "get_quote",
    "get_order_book",
    "reserve_order",
    "confirm_order",
    "cancel_order",
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
            assert quote["size"] > 0
            assert quote["taker_fee"] == 0.0015
            assert quote["timestamp"].endswith("Z") and "T" in quote["timestamp"]


async def test_bias_shifts_prices_relative_to_reference_at_same_seed() -> None:
    async with (
        connect(make_profile(name="ref", seed=11)) as reference,
        connect(make_profile(name="biased", seed=11, price_bias=0.005)) as biased,
    ):
        ref = structured(await reference.call_tool("get_quote", {"symbol": "ETH-USD"}))
        high = structured(await biased.call_tool("get_quote", {"symbol": "ETH-USD"}))
    assert high["mid"] / ref["mid"] == pytest.approx(1.005, rel=2e-4)
    assert high["bid"] > ref["ask"]


async def test_demo_profiles_serve_quotes() -> None:
    # beta quotes ~0.5% above alpha: the demo's fusion layer has something to find.
    alpha = profile_by_name("alpha").with_overrides(base_latency_ms=0, jitter_ms=0, tick_interval_s=3600)
    beta = profile_by_name("beta").with_overrides(base_latency_ms=0, jitter_ms=0, tick_interval_s=3600)
    async with connect(alpha) as a, connect(beta) as b:
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
    profile = make_profile(taker_fee=0.002, spread_bps=7, error_rate=0.0, outage_windows=((100.0, 110.0),))
    async with connect(profile) as client:
        info = structured(await client.call_tool("get_exchange_info", {}))
    assert info["exchange"] == "testex"
    assert info["taker_fee"] == 0.002 and info["spread_bps"] == 7
    assert info["outage_windows"] == [[100.0, 110.0]]
    assert info["in_outage"] is False and info["open_reservations"] == 0
    assert info["symbols"] == ["BTC-USD", "ETH-USD", "SOL-USD"]
