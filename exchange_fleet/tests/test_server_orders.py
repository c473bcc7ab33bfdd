"""Two-phase orders over real MCP sessions: reserve, confirm, cancel, refusals, idempotency, book walking."""

from decimal import Decimal
from typing import Any

import pytest
from mcp import Client

from exchange_fleet.tests.sessions import ManualClock, connect, error_text, make_profile, structured

BALANCES = {"USD": 10_000.0, "BTC": 1.0, "ETH": 5.0}
DEEP_POCKETS = {"USD": 100_000_000.0, "BTC": 10_000.0, "ETH": 100_000.0}


async def balances(client: Client) -> dict[str, dict[str, float]]:
    return structured(await client.call_tool("get_balances", {}))["balances"]


async def reserve(client: Client, **args: Any) -> dict[str, Any]:
    return structured(await client.call_tool("reserve_order", args))


async def test_buy_reserve_then_confirm_moves_balances_once() -> None:
    # The manual clock holds the price tick still between the quote and the reserve.
    async with connect(make_profile(starting_balances=BALANCES, taker_fee=0.001), ManualClock()) as client:
        quote = structured(await client.call_tool("get_quote", {"symbol": "ETH-USD"}))
        assert quote["ask_size"] > 1.5  # the best level holds at least $5k, so this fills at the touch
        r = await reserve(client, symbol="ETH-USD", side="buy", quantity=1.5)
        assert r["status"] == "reserved" and r["price"] == quote["ask"] and r["book_levels"] == 1
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
    async with connect(make_profile(starting_balances=BALANCES), ManualClock()) as client:
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


async def order_book(client: Client, symbol: str) -> dict[str, Any]:
    return structured(await client.call_tool("get_order_book", {"symbol": symbol, "depth": 100}))


def first_levels(levels: list[list[float]], full: int) -> tuple[float, Decimal]:
    """A quantity taking `full` whole levels and half the next, and its volume-weighted price."""
    taken = [(Decimal(str(p)), Decimal(str(q))) for p, q in levels[:full]]
    taken.append((Decimal(str(levels[full][0])), Decimal(str(levels[full][1])) / 2))
    quantity = sum(q for _, q in taken)
    return float(quantity), sum(p * q for p, q in taken) / quantity


@pytest.mark.parametrize("side", ["buy", "sell"])
async def test_a_large_order_walks_the_book_and_holds_the_average_price(side: str) -> None:
    profile = make_profile(starting_balances=DEEP_POCKETS, taker_fee=0.001)
    async with connect(profile, ManualClock()) as client:
        book = await order_book(client, "ETH-USD")
        levels = book["asks"] if side == "buy" else book["bids"]
        quantity, vwap = first_levels(levels, 3)
        r = await reserve(client, symbol="ETH-USD", side=side, quantity=quantity)
        assert r["book_levels"] == 4
        assert r["price"] == pytest.approx(float(vwap), abs=1e-8)
        # Worse than the touch, better than the deepest level reached.
        touch, deepest = levels[0][0], levels[3][0]
        assert min(touch, deepest) < r["price"] < max(touch, deepest)
        if side == "buy":
            assert r["reserved_amount"] == pytest.approx(quantity * r["price"] * 1.001)
        fill = structured(await client.call_tool("confirm_order", {"reservation_id": r["reservation_id"]}))
        assert fill["price"] == r["price"] and fill["notional"] == pytest.approx(quantity * r["price"])


async def test_an_order_larger_than_the_whole_book_is_refused() -> None:
    async with connect(make_profile(starting_balances=DEEP_POCKETS), ManualClock()) as client:
        book = await order_book(client, "BTC-USD")
        depth = float(sum(Decimal(str(size)) for _, size in book["bids"]))
        args = {"symbol": "BTC-USD", "side": "sell", "quantity": depth + 0.01}
        text = error_text(await client.call_tool("reserve_order", args))
        assert "not enough liquidity to sell" in text and "100 bids levels" in text
        assert (await balances(client))["BTC"]["reserved"] == 0
        everything = await reserve(client, symbol="BTC-USD", side="sell", quantity=depth)
        assert everything["book_levels"] == 100


async def test_a_limit_must_cover_every_level_the_order_walks() -> None:
    async with connect(make_profile(starting_balances=DEEP_POCKETS), ManualClock()) as client:
        asks = (await order_book(client, "SOL-USD"))["asks"]
        quantity, _ = first_levels(asks, 2)  # reaches the third level
        between = {"symbol": "SOL-USD", "side": "buy", "quantity": quantity, "limit_price": asks[1][0]}
        text = error_text(await client.call_tool("reserve_order", between))
        assert f"below {asks[2][0]}, the deepest of the 3 ask levels" in text
        r = await reserve(client, symbol="SOL-USD", side="buy", quantity=quantity, limit_price=asks[2][0])
        assert r["limit_price"] == asks[2][0] and r["book_levels"] == 3
