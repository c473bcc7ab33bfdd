"""Ticker resources, change notifications through subscriptions/listen, and the prompt."""

import json

import anyio
import pytest
from mcp import MCPError
from mcp.client.subscriptions import ResourceUpdated

from exchange_fleet.server import ticker_uri
from exchange_fleet.tests.sessions import connect, make_profile


async def test_one_ticker_resource_per_symbol() -> None:
    async with connect(make_profile(symbols=("BTC-USD", "ETH-USD"))) as client:
        resources = (await client.list_resources()).resources
        assert sorted(str(r.uri) for r in resources) == [
            "exchange://testex/ticker/BTC-USD",
            "exchange://testex/ticker/ETH-USD",
        ]
        assert all(r.mime_type == "application/json" for r in resources)


async def test_ticker_read_returns_the_current_quote_as_json() -> None:
    async with connect(make_profile()) as client:
        result = await client.read_resource(ticker_uri("testex", "SOL-USD"))
        content = result.contents[0]
        assert content.mime_type == "application/json"
        quote = json.loads(content.text)  # type: ignore[union-attr]
        assert quote["symbol"] == "SOL-USD" and quote["exchange"] == "testex"
        assert 0 < quote["bid"] < quote["ask"]


async def test_unknown_resource_is_a_protocol_error() -> None:
    async with connect(make_profile()) as client:
        with pytest.raises(MCPError) as excinfo:
            await client.read_resource("exchange://testex/ticker/DOGE-USD")
        assert excinfo.value.code == -32602


async def test_price_ticks_notify_listeners_and_move_the_ticker() -> None:
    uri = ticker_uri("testex", "BTC-USD")
    async with connect(make_profile(tick_interval_s=0.05)) as client:
        before = json.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        events: list[ResourceUpdated] = []
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            with anyio.fail_after(3):  # a few ticks at most
                async for event in subscription:
                    assert isinstance(event, ResourceUpdated)
                    events.append(event)
                    if len(events) == 2:
                        break
        assert {e.uri for e in events} == {uri}  # only the subscribed symbol's resource
        after = json.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        assert after["tick"] >= before["tick"] + 2


async def test_explain_spread_prompt() -> None:
    async with connect(make_profile()) as client:
        prompts = (await client.list_prompts()).prompts
        assert [p.name for p in prompts] == ["explain_spread"]
        result = await client.get_prompt("explain_spread", {"symbol": "ETH-USD"})
        text = result.messages[0].content.text  # type: ignore[union-attr]
        assert "ETH-USD" in text and "spread" in text
        with pytest.raises(MCPError):
            await client.get_prompt("explain_spread", {"symbol": "DOGE-USD"})
