"""Two-phase orders over real MCP sessions: reserve, confirm, cancel, refusals, idempotency."""

from typing import Any

import pytest
from mcp import Client

from exchange_fleet.tests.sessions import connect, error_text, make_profile, structured

BALANCES = {"USD": 10_000.0, "BTC": 1.0, "ETH": 5.0}


async def balances(client: Client) -> dict[str, dict[str, float]]:
    return structured(await client.call_tool("get_balances", {}))["balances"]


async def reserve(client: Client, **args: Any) -> dict[str, Any]:
    return structured(await client.call_tool("reserve_order", args))


async def test_buy_reserve_then_confirm_moves_balances_once() -> None:
    async with connect(make_profile(starting_balances=BALANCES, taker_fee=0.001)) as client:
        quote = structured(await client.call_tool("get_quote", {"symbol": "ETH-USD"}))
        r = await reserve(client, symbol="ETH-USD", side="buy", quantity=1.5)
        assert r["status"] == "reserved" and r["price"] == quote["ask"]
        assert r["reserved_asset"] == "USD"
        assert r["reserved_amount"] == pytest.approx(1.5 * quote["ask"] * 1.001)
        assert 29 < r["expires_in_s"] <= 30 and r["expires_at"].endswith("Z")
        held = await balances(client)
        assert held["USD"]["reserved"] == pytest.approx(r["reserved_amount"])
        assert held["USD"]["available"] == pytest.approx(10_000 - r["reserved_amount"])

        fill = structured(await client.call_tool("confirm_order", {"reservation_id": r["reservation_id"]}))
        assert fill["status"] == "confirmed" and fill["fee_asset"] == "USD"
        assert fill["notional"] == pytest.approx(1.5 * quote["ask"])
        # Retrying the confirm (e.g. after a lost reply) returns the same fill and trades nothing more.
        again = structured(await client.call_tool("confirm_order", {"reservation_id": r["reservation_id"]}))
        assert again == fill
        after = await balances(client)
        assert after["ETH"]["total"] == pytest.approx(6.5)
        assert after["USD"]["total"] == pytest.approx(10_000 - r["reserved_amount"])
        assert after["USD"]["reserved"] == 0


async def test_sell_reserves_base_asset_and_credits_proceeds_minus_fee() -> None:
    async with connect(make_profile(starting_balances=BALANCES, taker_fee=0.002)) as client:
        r = await reserve(client, symbol="BTC-USD", side="sell", quantity=0.25)
        assert (r["reserved_asset"], r["reserved_amount"]) == ("BTC", 0.25)
        fill = structured(await client.call_tool("confirm_order", {"reservation_id": r["reservation_id"]}))
        after = await balances(client)
        assert after["BTC"]["total"] == pytest.approx(0.75)
        assert after["USD"]["total"] == pytest.approx(10_000 + fill["notional"] * (1 - 0.002))


async def test_overspend_is_refused_while_funds_are_reserved() -> None:
    async with connect(make_profile(starting_balances=BALANCES)) as client:
        first = await reserve(client, symbol="ETH-USD", side="buy", quantity=2)  # ~6400 USD
        text = error_text(await client.call_tool("reserve_order", {"symbol": "ETH-USD", "side": "buy", "quantity": 2}))
        assert "insufficient USD" in text and "available" in text
        text = error_text(await client.call_tool("reserve_order", {"symbol": "BTC-USD", "side": "sell", "quantity": 3}))
        assert "insufficient BTC" in text
        # Releasing the first reservation makes the funds available again.
        structured(await client.call_tool("cancel_order", {"reservation_id": first["reservation_id"]}))
        await reserve(client, symbol="ETH-USD", side="buy", quantity=2)


async def test_cancel_is_idempotent_and_contradictions_are_refused() -> None:
    async with connect(make_profile(starting_balances=BALANCES)) as client:
        r = await reserve(client, symbol="BTC-USD", side="buy", quantity=0.01)
        rid = {"reservation_id": r["reservation_id"]}
        cancelled = structured(await client.call_tool("cancel_order", rid))
        assert cancelled["status"] == "cancelled" and cancelled["released_asset"] == "USD"
        assert structured(await client.call_tool("cancel_order", rid)) == cancelled
        assert (await balances(client))["USD"]["reserved"] == 0
        assert "was cancelled; it cannot be confirmed" in error_text(await client.call_tool("confirm_order", rid))

        confirmed = await reserve(client, symbol="BTC-USD", side="buy", quantity=0.01)
        cid = {"reservation_id": confirmed["reservation_id"]}
        structured(await client.call_tool("confirm_order", cid))
        assert "already confirmed" in error_text(await client.call_tool("cancel_order", cid))

        for tool in ("confirm_order", "cancel_order"):
            assert "unknown reservation id 'bogus'" in error_text(
                await client.call_tool(tool, {"reservation_id": "bogus"})
            )


async def test_reservation_expiry_releases_funds() -> None:
    now = [100.0]
    async with connect(make_profile(starting_balances=BALANCES, reservation_ttl_s=5), clock=lambda: now[0]) as client:
        r = await reserve(client, symbol="BTC-USD", side="buy", quantity=0.05)
        assert r["expires_in_s"] == 5
        now[0] += 5.5
        assert (await balances(client))["USD"]["reserved"] == 0
        text = error_text(await client.call_tool("confirm_order", {"reservation_id": r["reservation_id"]}))
        assert "expired" in text
        cancelled = structured(await client.call_tool("cancel_order", {"reservation_id": r["reservation_id"]}))
        assert cancelled["status"] == "expired"


async def test_limit_price_must_be_marketable() -> None:
    async with connect(make_profile(starting_balances=BALANCES)) as client:
        quote = structured(await client.call_tool("get_quote", {"symbol": "BTC-USD"}))
        low = {"symbol": "BTC-USD", "side": "buy", "quantity": 0.01, "limit_price": quote["ask"] - 100}
        assert "below the current ask" in error_text(await client.call_tool("reserve_order", low))
        high = {"symbol": "BTC-USD", "side": "sell", "quantity": 0.01, "limit_price": quote["bid"] + 100}
        assert "above the current bid" in error_text(await client.call_tool("reserve_order", high))
        ok = await reserve(client, symbol="BTC-USD", side="buy", quantity=0.01, limit_price=quote["ask"] + 100)
        assert ok["price"] == quote["ask"]  # executes at the market, not at the worse limit


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"symbol": "BTC-USD", "side": "hold", "quantity": 1}, "side"),
        ({"symbol": "BTC-USD", "side": "buy", "quantity": 0}, "quantity"),
        ({"symbol": "BTC-USD", "side": "buy", "quantity": -1}, "quantity"),
        ({"symbol": "BTC-USD", "side": "buy", "quantity": 1, "limit_price": 0}, "limit_price"),
        ({"symbol": "XRP-USD", "side": "buy", "quantity": 1}, "unknown symbol"),
    ],
)
async def test_bad_order_arguments_are_tool_errors(args: dict[str, Any], fragment: str) -> None:
    async with connect(make_profile(starting_balances=BALANCES)) as client:
        assert fragment in error_text(await client.call_tool("reserve_order", args))
        assert (await balances(client))["USD"]["reserved"] == 0
