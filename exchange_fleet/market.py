"""Price model: a seeded random walk per symbol, quotes and order books derived from it.

Pure computation, no I/O and no clocks: the server decides when to `step()` (its
ticker) and this module only answers "what does the market look like at tick N".
Two models built with the same seed walk identically, which is what lets the demo
fleet share one underlying market and lets tests compare a biased exchange with the
reference one.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

# Rough 2025-era levels so the demo looks plausible; unknown bases start at 100.
INITIAL_PRICES: dict[str, float] = {"BTC": 65_000.0, "ETH": 3_200.0, "SOL": 150.0}
DEFAULT_INITIAL_PRICE = 100.0

# Per-tick log-return standard deviation (5 bp) and the pull back towards the
# starting price: enough movement to see on a chart, no drift to zero over a long demo.
DEFAULT_VOLATILITY = 0.0005
DEFAULT_MEAN_REVERSION = 0.002

MAX_BOOK_DEPTH = 100


class UnknownSymbolError(ValueError):
    """The symbol is not listed on this market."""


@dataclass(frozen=True)
class QuoteSnapshot:
    symbol: str
    bid: float
    ask: float
    last: float
    size: float
    mid: float
    tick: int


@dataclass(frozen=True)
class OrderBookSnapshot:
    symbol: str
    bids: tuple[tuple[float, float], ...]
    """(price, size) best first, i.e. descending prices."""
    asks: tuple[tuple[float, float], ...]
    """(price, size) best first, i.e. ascending prices."""
    tick: int


def stable_seed(*parts: object) -> int:
    """A process-independent integer seed (built-in hash() of str is salted per process)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def price_increment(price: float) -> float:
    """Tick size: cents for prices >= 1, finer for sub-dollar assets."""
    return 0.01 if price >= 1.0 else 1e-6


def _decimals(increment: float) -> int:
    return max(0, -int(math.floor(math.log10(increment))))


def round_down(value: float, increment: float) -> float:
    return round(math.floor(value / increment + 1e-9) * increment, _decimals(increment))


def round_up(value: float, increment: float) -> float:
    return round(math.ceil(value / increment - 1e-9) * increment, _decimals(increment))


class PriceWalk:
    """Mean-reverting geometric random walk for one symbol."""

    def __init__(
        self,
        initial_price: float,
        rng: random.Random,
        *,
        volatility: float = DEFAULT_VOLATILITY,
        mean_reversion: float = DEFAULT_MEAN_REVERSION,
    ) -> None:
        if initial_price <= 0:
            raise ValueError(f"initial_price must be > 0, got {initial_price}")
        self._anchor = math.log(initial_price)
        self._log_price = self._anchor
        self._rng = rng
        self._volatility = volatility
        self._mean_reversion = mean_reversion

    @property
    def price(self) -> float:
        return math.exp(self._log_price)

    def step(self) -> float:
        pull = -self._mean_reversion * (self._log_price - self._anchor)
        self._log_price += pull + self._rng.gauss(0.0, self._volatility)
        return self.price


class MarketModel:
    """The market of one exchange: a walk per symbol plus that exchange's spread and bias.

    `price_bias` shifts every quoted price (bid, ask, last, book) relative to the
    underlying walk: 0.005 quotes 0.5% high. The walk itself depends only on `seed`
    and the symbol, so equal seeds give equal underlying prices tick for tick.
    """

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        seed: int,
        spread_bps: float,
        price_bias: float = 0.0,
        volatility: float = DEFAULT_VOLATILITY,
        initial_prices: dict[str, float] | None = None,
    ) -> None:
        self._seed = seed
        self._spread_bps = spread_bps
        self._bias = price_bias
        self._tick = 0
        prices = {**INITIAL_PRICES, **(initial_prices or {})}
        self._walks: dict[str, PriceWalk] = {}
        self._trade_rngs: dict[str, random.Random] = {}
        self._last: dict[str, tuple[float, float]] = {}
        for symbol in symbols:
            base = symbol.split("-")[0]
            # One RNG stream per symbol and purpose: adding a symbol or looking at the
            # book never perturbs another symbol's walk.
            self._walks[symbol] = PriceWalk(
                prices.get(base, DEFAULT_INITIAL_PRICE),
                random.Random(stable_seed(seed, symbol, "walk")),
                volatility=volatility,
            )
            self._trade_rngs[symbol] = random.Random(stable_seed(seed, symbol, "trades"))
            self._last[symbol] = self._draw_trade(symbol)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._walks)

    @property
    def tick(self) -> int:
        return self._tick

    def _walk(self, symbol: str) -> PriceWalk:
        try:
            return self._walks[symbol]
        except KeyError:
            known = ", ".join(self._walks)
            raise UnknownSymbolError(f"unknown symbol {symbol!r}; this exchange lists: {known}") from None

    def underlying_mid(self, symbol: str) -> float:
        """The unbiased walk price (what a perfectly fair exchange would quote as mid)."""
        return self._walk(symbol).price

    def mid(self, symbol: str) -> float:
        return self.underlying_mid(symbol) * (1.0 + self._bias)

    def step(self) -> None:
        """Advance every symbol by one tick and draw that tick's last trade."""
        self._tick += 1
        for symbol, walk in self._walks.items():
            walk.step()
            self._last[symbol] = self._draw_trade(symbol)

    def _draw_trade(self, symbol: str) -> tuple[float, float]:
        """A plausible last trade: somewhere in the spread, a size worth $500..$50k."""
        rng = self._trade_rngs[symbol]
        bid, ask = self._bid_ask(symbol)
        increment = price_increment(bid)
        price = round(bid + (ask - bid) * rng.random(), _decimals(increment))
        notional = math.exp(rng.uniform(math.log(500.0), math.log(50_000.0)))
        return price, _round_size(notional / price)

    def _bid_ask(self, symbol: str) -> tuple[float, float]:
        mid = self.mid(symbol)
        half = mid * self._spread_bps / 20_000.0
        increment = price_increment(mid)
        bid = round_down(mid - half, increment)
        # A crossed or locked book is never shown: with a zero spread the ask still
        # sits one increment above the bid.
        ask = max(round_up(mid + half, increment), round(bid + increment, _decimals(increment)))
        return bid, ask

    def quote(self, symbol: str) -> QuoteSnapshot:
        bid, ask = self._bid_ask(symbol)
        last, size = self._last[symbol]
        return QuoteSnapshot(
            symbol=symbol, bid=bid, ask=ask, last=last, size=size, mid=round((bid + ask) / 2, 8), tick=self._tick
        )

    def order_book(self, symbol: str, depth: int = 10) -> OrderBookSnapshot:
        """`depth` levels per side; the same tick always yields the same book."""
        if not 1 <= depth <= MAX_BOOK_DEPTH:
            raise ValueError(f"depth must be between 1 and {MAX_BOOK_DEPTH}, got {depth}")
        bid, ask = self._bid_ask(symbol)
        increment = price_increment(bid)
        # Levels one basis point apart (at least one increment) so deep books stay near the touch.
        step = max(increment, round_up(bid * 1e-4, increment))
        rng = random.Random(stable_seed(self._seed, symbol, "book", self._tick))
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        digits = _decimals(increment)
        for level in range(depth):
            # Liquidity thickens away from the touch, as on real books.
            scale = 1.0 + 0.35 * level
            bid_notional = rng.uniform(5_000.0, 60_000.0) * scale
            ask_notional = rng.uniform(5_000.0, 60_000.0) * scale
            bid_price = round(bid - level * step, digits)
            ask_price = round(ask + level * step, digits)
            if bid_price <= 0:
                break
            bids.append((bid_price, _round_size(bid_notional / bid_price)))
            asks.append((ask_price, _round_size(ask_notional / ask_price)))
        return OrderBookSnapshot(symbol=symbol, bids=tuple(bids), asks=tuple(asks), tick=self._tick)


def _round_size(size: float) -> float:
    # Six decimals: fine enough for BTC lots, and never rounds a real size to zero.
    return max(round(size, 6), 1e-6)
