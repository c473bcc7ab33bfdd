"""The reference processor: quotes from every exchange in, the best bid, best ask and cross-exchange spread out.

For each symbol it keeps the latest quote per exchange (`quotes.<symbol>` events: exchange, bid, ask, last, size,
time), leaves out quotes older than PIPELINE_QUOTE_STALE_SECONDS, and publishes `spreads.<symbol>` when the best
bid, the best ask or where they are changes.

The figures say what they are called: `spread` is the best ask minus the best bid (positive in a normal market, as
a trader reads it), `spread_bps` the same over the mid. When the best bid is above the best ask the market is
`crossed`: one exchange bids more than another asks, an arbitrage signal rather than a spread, and `crossed_bps`
says by how much (null otherwise). A locked market (bid equal to ask) has a spread of 0 and is not crossed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from pipeline.events import Event
from pipeline.processors import Derived, register_processor


@dataclass(frozen=True)
class SideQuote:
    exchange: str
    bid: float
    ask: float
    at: float


@register_processor("spreads", streams=["quotes.*"])
class SpreadProcessor:
    def __init__(self, stale_seconds: float | None = None) -> None:
        self.stale_seconds = settings.PIPELINE_QUOTE_STALE_SECONDS if stale_seconds is None else stale_seconds
        self._quotes: defaultdict[str, dict[str, SideQuote]] = defaultdict(dict)
        self._last_emitted: dict[str, tuple[Any, ...]] = {}

    def process(self, event: Event, now: float | None = None) -> list[Derived]:
        payload = event.payload
        symbol = event.stream.split(".", 1)[1] if "." in event.stream else str(payload.get("symbol", ""))
        exchange = str(payload.get("exchange") or event.server or "")
        bid, ask = payload.get("bid"), payload.get("ask")
        if not symbol or not exchange or not _is_price(bid) or not _is_price(ask):
            raise ValueError(f"{event.stream}#{event.seq} is not a quote (exchange, bid, ask)")
        self._quotes[symbol][exchange] = SideQuote(exchange, float(bid), float(ask), event.at)
        now = time.time() if now is None else now
        fresh = [q for q in self._quotes[symbol].values() if now - q.at <= self.stale_seconds]
        if not fresh:
            return []
        best_bid = max(fresh, key=lambda q: q.bid)
        best_ask = min(fresh, key=lambda q: q.ask)
        key = (best_bid.exchange, best_bid.bid, best_ask.exchange, best_ask.ask, len(fresh))
        if self._last_emitted.get(symbol) == key:
            return []
        self._last_emitted[symbol] = key
        spread = best_ask.ask - best_bid.bid
        mid = (best_bid.bid + best_ask.ask) / 2
        spread_bps = round(spread / mid * 10_000, 4) if mid > 0 else None
        crossed = spread < 0
        return [
            Derived(
                stream=f"spreads.{symbol}",
                kind="spread",
                payload={
                    "symbol": symbol,
                    "best_bid": best_bid.bid,
                    "best_bid_exchange": best_bid.exchange,
                    "best_ask": best_ask.ask,
                    "best_ask_exchange": best_ask.exchange,
                    "spread": round(spread, 10),
                    "spread_bps": spread_bps,
                    "crossed": crossed,
                    "crossed_bps": -spread_bps if crossed and spread_bps is not None else None,
                    "exchanges": len(fresh),
                },
            )
        ]


def _is_price(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
