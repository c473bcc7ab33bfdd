"""What a coordinator needs after a failure, over real MCP sessions: idempotent reserves, asking a participant
what became of a reservation, and confirms whose replies are lost."""

from typing import Any

import pytest
from mcp import Client

from exchange_fleet.server import LOST_REPLY_MESSAGE
from exchange_fleet.tests.sessions import ManualClock, connect, error_text, make_profile, structured

BALANCES = {"USD": 100_000.0, "BTC": 2.0, "ETH": 20.0}
ORDER = {"symbol": "ETH-USD", "side": "buy", "quantity": 1.0}


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    return structured(await client.call_tool(tool, args))


async def usd(client: Client) -> dict[str, float]:
    return (await call(client, "get_balances"))["balances"]["USD"]


# -- idempotency keys ---------------------------------------------------------------------


async def test_a_retried_reserve_with_the_same_key_reserves_once() -> None:
    clock = ManualClock()
    async with connect(make_profile(starting_balances=BALANCES, tick_interval_s=1.0), clock) as client:
        first = await call(client, "reserve_order", **ORDER, idempotency_key="tx-1:alpha")
        clock.now += 5  # the retry comes a few ticks later, at other prices
        again = await call(client, "reserve_order", **ORDER, idempotency_key="tx-1:alpha")
        assert again["reservation_id"] == first["reservation_id"]
        assert again["price"] == first["price"] and again["idempotency_key"] == "tx-1:alpha"
        assert again["expires_in_s"] == pytest.approx(first["expires_in_s"] - 5)
        assert (await usd(client))["reserved"] == pytest.approx(first["reserved_amount"])  # held once
        assert (await call(client, "get_exchange_info"))["open_reservations"] == 1
        # A new key is a new order.
        other = await call(client, "reserve_order", **ORDER, idempotency_key="tx-2:alpha")
        assert other["reservation_id"] != first["reservation_id"]


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"quantity": 2.0}, "quantity 1.0 (now 2.0)"),
        ({"side": "sell"}, "side buy (now sell)"),
        ({"symbol": "BTC-USD"}, "symbol ETH-USD (now BTC-USD)"),
        ({"limit_price": 1_000_000.0}, "limit_price None (now 1000000.0)"),
    ],
)
async def test_the_same_key_for_a_different_order_is_refused(change: dict[str, Any], difference: str) -> None:
    async with connect(make_profile(starting_balances=BALANCES)) as client:
        first = await call(client, "reserve_order", **ORDER, idempotency_key="k")
        text = error_text(await client.call_tool("reserve_order", {**ORDER, **change, "idempotency_key": "k"}))
        assert f"idempotency key 'k' was already used for reservation {first['reservation_id']}" in text
        assert difference in text and "use a new key" in text
        assert (await call(client, "get_exchange_info"))["open_reservations"] == 1


async def test_a_retry_after_the_reservation_was_confirmed_reports_it_confirmed() -> None:
    async with connect(make_profile(starting_balances=BALANCES)) as client:
        first = await call(client, "reserve_order", **ORDER, idempotency_key="k")
        await call(client, "confirm_order", reservation_id=first["reservation_id"])
        again = await call(client, "reserve_order", **ORDER, idempotency_key="k")
        assert (again["reservation_id"], again["status"]) == (first["reservation_id"], "confirmed")
        assert (await usd(client))["reserved"] == 0


async def test_an_empty_key_is_rejected_by_the_schema() -> None:
    async with connect(make_profile(starting_balances=BALANCES)) as client:
        assert "idempotency_key" in error_text(
            await client.call_tool("reserve_order", {**ORDER, "idempotency_key": ""})
        )


# -- get_reservation ----------------------------------------------------------------------


async def test_get_reservation_follows_a_reservation_through_its_states() -> None:
    clock = ManualClock()
    async with connect(make_profile(starting_balances=BALANCES, reservation_ttl_s=10), clock) as client:
        r = await call(client, "reserve_order", **ORDER, idempotency_key="to-confirm")
        by_id = await call(client, "get_reservation", reservation_id=r["reservation_id"])
        by_key = await call(client, "get_reservation", idempotency_key="to-confirm")
        assert by_id == by_key == r
        assert r["status"] == "reserved" and r["executed_at"] is None

        fill = await call(client, "confirm_order", reservation_id=r["reservation_id"])
        confirmed = await call(client, "get_reservation", idempotency_key="to-confirm")
        assert confirmed["status"] == "confirmed" and confirmed["executed_at"] == fill["executed_at"]

        cancelled = await call(client, "reserve_order", **ORDER)
        await call(client, "cancel_order", reservation_id=cancelled["reservation_id"])
        lapsing = await call(client, "reserve_order", **ORDER)
        clock.now += 11
        states = [
            (await call(client, "get_reservation", reservation_id=rid))["status"]
            for rid in (r["reservation_id"], cancelled["reservation_id"], lapsing["reservation_id"])
        ]
        assert states == ["confirmed", "cancelled", "expired"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"reservation_id": "testex-nope"}, "unknown reservation id 'testex-nope'"),
        ({"idempotency_key": "never-used"}, "no reservation with idempotency key 'never-used'"),
        ({}, "pass exactly one of reservation_id and idempotency_key"),
        ({"reservation_id": "a", "idempotency_key": "b"}, "pass exactly one of reservation_id and idempotency_key"),
    ],
)
async def test_get_reservation_refuses_unknown_or_ambiguous_questions(args: dict[str, str], message: str) -> None:
    async with connect(make_profile(starting_balances=BALANCES)) as client:
        text = error_text(await client.call_tool("get_reservation", args))
        assert message in text


# -- lost confirm replies -----------------------------------------------------------------


async def test_a_lost_confirm_reply_executes_the_fill_and_a_retry_returns_it() -> None:
    profile = make_profile(starting_balances=BALANCES, taker_fee=0.001, lose_confirm_replies=1)
    async with connect(profile) as client:
        before = await usd(client)
        r = await call(client, "reserve_order", **ORDER, idempotency_key="tx-9")
        lost = await client.call_tool("confirm_order", {"reservation_id": r["reservation_id"]})
        text = error_text(lost)
        assert LOST_REPLY_MESSAGE in text and "retry confirm_order or ask get_reservation" in text

        # The trade happened even though the caller saw an error.
        assert (await call(client, "get_reservation", idempotency_key="tx-9"))["status"] == "confirmed"
        after = await usd(client)
        assert after["total"] == pytest.approx(before["total"] - r["reserved_amount"]) and after["reserved"] == 0

        fill = await call(client, "confirm_order", reservation_id=r["reservation_id"])
        assert fill["status"] == "confirmed" and fill["price"] == r["price"]
        assert await call(client, "confirm_order", reservation_id=r["reservation_id"]) == fill
        assert (await usd(client))["total"] == pytest.approx(after["total"])  # executed once
        assert (await call(client, "get_exchange_info"))["lose_confirm_replies"] == 0


async def test_the_knob_counts_confirm_calls_that_executed_and_nothing_else() -> None:
    async with connect(make_profile(starting_balances=BALANCES, lose_confirm_replies=2)) as client:
        # A refused confirm has no reply worth losing: it does not use up the knob.
        assert "unknown reservation id" in error_text(await client.call_tool("confirm_order", {"reservation_id": "x"}))
        r = await call(client, "reserve_order", **ORDER)
        rid = {"reservation_id": r["reservation_id"]}
        outcomes = [(await client.call_tool("confirm_order", rid)).is_error for _ in range(3)]
        assert outcomes == [True, True, False]  # the first retry is lost too, then the fill comes through
        other = await call(client, "reserve_order", **ORDER)
        assert not (await client.call_tool("confirm_order", {"reservation_id": other["reservation_id"]})).is_error
