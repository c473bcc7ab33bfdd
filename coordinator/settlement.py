"""What a committed two-phase transaction did on the exchanges: each leg's fill as its exchange confirmed it, and the
profit realised when the legs buy and sell the same quantity of one symbol (an arbitrage): read from the
confirmations, never from the analysis that proposed it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from coordinator.models import Participant, ParticipantState

MONEY_DECIMALS = 8
# Quantities arrive as JSON floats: legs equal up to float noise count as equal.
_QUANTITY_TOLERANCE = 1e-9


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def fills_of(participants: Iterable[Participant]) -> list[dict[str, Any]]:
    """Each confirmed leg's fill (price, quantity, notional, fee), in the participants' order; a confirmation
    without a price (a saga's action, a participant of another kind) is not a fill."""
    fills: list[dict[str, Any]] = []
    for participant in participants:
        outcome = participant.outcome or {}
        if participant.state != ParticipantState.CONFIRMED or _number(outcome.get("price")) is None:
            continue
        fills.append(
            {
                "server": participant.server,
                "side": outcome.get("side") or participant.order.get("side"),
                "symbol": outcome.get("symbol") or participant.order.get("symbol"),
                "quantity": _number(outcome.get("quantity")),
                "price": _number(outcome.get("price")),
                "notional": _number(outcome.get("notional")),
                "fee": _number(outcome.get("fee")),
                "fee_asset": outcome.get("fee_asset"),
                "executed_at": outcome.get("executed_at"),
            }
        )
    return fills


def realised_profit(fills: list[dict[str, Any]], *, legs: int) -> dict[str, Any] | None:
    """sells - buys - fees in the quote currency, when every one of the `legs` filled, all in one symbol, the bought
    quantity equal to the sold one and every fee charged in the quote currency; None otherwise (then a profit in one
    currency would be a made-up figure)."""
    if not fills or len(fills) != legs:
        return None
    symbols = {fill["symbol"] for fill in fills}
    if len(symbols) != 1 or not isinstance(next(iter(symbols)), str) or "-" not in next(iter(symbols)):
        return None
    quote = next(iter(symbols)).split("-", 1)[1]
    if any(None in (f["quantity"], f["notional"], f["fee"]) or f["fee_asset"] != quote for f in fills):
        return None
    bought = math.fsum(f["quantity"] for f in fills if f["side"] == "buy")
    sold = math.fsum(f["quantity"] for f in fills if f["side"] == "sell")
    if not bought or abs(bought - sold) > max(bought, sold) * _QUANTITY_TOLERANCE:
        return None
    gross = math.fsum(f["notional"] for f in fills if f["side"] == "sell") - math.fsum(
        f["notional"] for f in fills if f["side"] == "buy"
    )
    fees = math.fsum(f["fee"] for f in fills)
    return {
        "currency": quote,
        "gross_profit": round(gross, MONEY_DECIMALS),
        "fees": round(fees, MONEY_DECIMALS),
        "net_profit": round(gross - fees, MONEY_DECIMALS),
    }
