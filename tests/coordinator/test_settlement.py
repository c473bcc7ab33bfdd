"""A transaction's fills and realised profit, read from its participants' confirmations (no database, no server)."""

from __future__ import annotations

import pytest

from coordinator.models import Participant
from coordinator.settlement import fills_of, realised_profit


def leg(server: str, side: str, price: float, *, quantity: float = 0.5, fee: float = 0.1, state: str = "confirmed",
        fee_asset: str = "USD", symbol: str = "BTC-USD") -> Participant:  # fmt: skip
    outcome = {
        "side": side,
        "symbol": symbol,
        "quantity": quantity,
        "price": price,
        "notional": price * quantity,
        "fee": fee,
        "fee_asset": fee_asset,
        "executed_at": "2026-07-28T12:00:00+00:00",
    }
    order = {"symbol": symbol, "side": side, "quantity": quantity}
    return Participant(server=server, state=state, order=order, outcome=outcome if state == "confirmed" else None)


def test_the_profit_is_what_was_sold_less_what_was_bought_less_every_fee():
    legs = [leg("alpha", "buy", 100.0, fee=0.05), leg("beta", "sell", 101.0, fee=0.0505)]
    fills = fills_of(legs)
    assert [(f["server"], f["side"], f["price"], f["notional"]) for f in fills] == [
        ("alpha", "buy", 100.0, 50.0),
        ("beta", "sell", 101.0, 50.5),
    ]
    # sold 50.5 - bought 50.0 = 0.5 gross; fees 0.05 + 0.0505 = 0.1005; net 0.3995
    assert realised_profit(fills, legs=2) == {
        "currency": "USD",
        "gross_profit": 0.5,
        "fees": 0.1005,
        "net_profit": pytest.approx(0.3995),
    }


@pytest.mark.parametrize(
    ("legs", "why"),
    [
        ([leg("a", "buy", 100.0), leg("b", "sell", 101.0, state="cancelled")], "a leg did not fill"),
        ([leg("a", "buy", 100.0), leg("b", "sell", 101.0, quantity=0.4)], "unequal quantities"),
        ([leg("a", "buy", 100.0), leg("b", "sell", 101.0, fee_asset="BTC")], "a fee in another currency"),
        ([leg("a", "buy", 100.0), leg("b", "sell", 101.0, symbol="ETH-USD")], "two symbols"),
        ([leg("a", "buy", 100.0), leg("b", "buy", 101.0)], "nothing sold"),
    ],
)
def test_no_profit_is_made_up_when_the_legs_do_not_make_one_trade(legs, why):
    assert realised_profit(fills_of(legs), legs=len(legs)) is None, why


def test_a_confirmation_without_a_price_is_not_a_fill():
    saga_step = Participant(server="a", state="confirmed", order={"action": {"tool": "x"}}, outcome={"ok": True})
    assert fills_of([saga_step]) == []
