"""The spreads processor's figures mean what they are called: the spread is ask minus bid, and a crossed market
(one exchange bids above another's ask) is flagged as crossed with by how much, not shown as a positive spread."""

from __future__ import annotations

import pytest

from pipeline.events import Event
from pipeline.spreads import SpreadProcessor

NOW = 1_000.0


def quote(exchange: str, bid: float, ask: float) -> Event:
    return Event("quotes.BTC-USD", "quote", {"exchange": exchange, "bid": bid, "ask": ask}, at=NOW)


def test_a_normal_market_has_a_positive_spread_and_is_not_crossed():
    processor = SpreadProcessor(stale_seconds=10)
    processor.process(quote("alpha", 100.0, 100.2), now=NOW)
    (derived,) = processor.process(quote("beta", 100.1, 100.3), now=NOW)
    figures = derived.payload
    assert (figures["best_bid"], figures["best_bid_exchange"]) == (100.1, "beta")
    assert (figures["best_ask"], figures["best_ask_exchange"]) == (100.2, "alpha")
    assert figures["spread"] == pytest.approx(0.1)
    assert figures["spread_bps"] == pytest.approx(0.1 / 100.15 * 10_000, abs=1e-3)
    assert figures["crossed"] is False and figures["crossed_bps"] is None


def test_a_crossed_market_says_crossed_and_by_how_much():
    processor = SpreadProcessor(stale_seconds=10)
    processor.process(quote("alpha", 100.0, 100.1), now=NOW)
    (derived,) = processor.process(quote("gamma", 100.6, 100.7), now=NOW)  # gamma bids above alpha's ask
    figures = derived.payload
    assert figures["best_bid_exchange"] == "gamma" and figures["best_ask_exchange"] == "alpha"
    assert figures["spread"] == pytest.approx(-0.5) and figures["crossed"] is True
    assert figures["crossed_bps"] == pytest.approx(0.5 / 100.35 * 10_000, abs=1e-3)
    assert figures["crossed_bps"] == pytest.approx(-figures["spread_bps"])


def test_a_locked_market_is_not_crossed():
    processor = SpreadProcessor(stale_seconds=10)
    processor.process(quote("alpha", 99.0, 100.0), now=NOW)
    (derived,) = processor.process(quote("beta", 100.0, 101.0), now=NOW)
    assert derived.payload["spread"] == 0 and derived.payload["crossed"] is False


def test_something_that_is_not_a_quote_is_refused():
    with pytest.raises(ValueError, match="not a quote"):
        SpreadProcessor(stale_seconds=10).process(quote("alpha", -1.0, 100.0), now=NOW)
