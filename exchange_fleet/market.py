"""Price model: prices as a pure function of (seed, symbol, absolute tick), quotes and books derived from them.

Pure computation, no I/O and no clocks: the caller says which tick it wants and this module answers "what does
the market look like at tick N". The tick is absolute, `floor(unix_time / tick_interval_s)`, and nothing here
depends on when a model was built, so:

- two exchanges with the same seed quote the same underlying mid at the same wall-clock moment, whenever each
  was started (what lets the demo fleet share one underlying market, and tests compare a biased exchange with the
  reference one);
- an exchange restarted at time T quotes exactly what it would have quoted had it never stopped: no jump, hence
  no phantom arbitrage between a freshly restarted exchange and the others.

The underlying path is multi-octave value noise in log-price: at each of several time scales (1 s to ~3 days,
4x apart) a hashed pseudo-random value sits on a lattice and is smoothly interpolated in between. Summed with
amplitudes growing like the square root of the scale, that moves like a random walk over minutes to hours (about
0.5% per hour) but, unlike a walk, costs O(octaves) to evaluate at any tick and is bounded (about +/-8.5% around
the reference price), so prices stay positive and plausible forever.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

# Rough 2025-era levels the paths wander around; unknown bases centre on 100.
REFERENCE_PRICES: dict[str, float] = {"BTC": 65_000.0, "ETH": 3_200.0, "SOL": 150.0}
DEFAULT_REFERENCE_PRICE = 100.0

# Standard deviation of one-hour log returns. Over a day the moves are a few percent; the path never strays
# further than PATH_OCTAVES allow (see PricePath.max_deviation).
DEFAULT_HOURLY_VOLATILITY = 0.005

# Lattice spacings of the noise octaves, in seconds: 1 s (tick-to-tick wiggle) up to 4**9 s (about 3 days).
PATH_OCTAVES: tuple[float, ...] = tuple(4.0**i for i in range(10))

MAX_BOOK_DEPTH = 100

# Prices held by book-walking fills are rounded to this many decimals (finer than any price increment here).
FILL_PRICE_QUANTUM = Decimal("1e-8")


class UnknownSymbolError(ValueError):
    """The symbol is not listed on this market."""


class InsufficientLiquidityError(ValueError):
    """The order is larger than everything the book shows on that side."""


@dataclass(frozen=True)
class QuoteSnapshot:
    symbol: str
    bid: float
    ask: float
    last: float
    size: float
    mid: float
    tick: int
    bid_size: float
    """Size at the best bid: the first bid level of the order book at this tick."""
    ask_size: float
    """Size at the best ask: the first ask level of the order book at this tick."""


@dataclass(frozen=True)
class OrderBookSnapshot:
    symbol: str
    bids: tuple[tuple[float, float], ...]
    """(price, size) best first, i.e. descending prices."""
    asks: tuple[tuple[float, float], ...]
    """(price, size) best first, i.e. ascending prices."""
    tick: int


@dataclass(frozen=True)
class BookFill:
    """What a market order of `quantity` would get by walking one side of the book at one tick."""

    symbol: str
    side: Literal["buy", "sell"]
    quantity: Decimal
    price: Decimal
    """Volume-weighted average price of the levels walked, rounded to FILL_PRICE_QUANTUM."""
    best_price: float
    """The touch: best ask for a buy, best bid for a sell."""
    worst_price: float
    """The deepest level the fill reaches into."""
    levels: int
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


_SQRT3 = math.sqrt(3.0)
_UNIT = float(2**64)


class PricePath:
    """The underlying (unbiased) price of one symbol as a deterministic function of wall-clock time.

    `price_at(t)` depends only on (seed, symbol, t): any process, started at any moment, gets the same answer.
    """

    def __init__(
        self,
        reference_price: float,
        *,
        seed: int,
        symbol: str,
        hourly_volatility: float = DEFAULT_HOURLY_VOLATILITY,
        octaves: tuple[float, ...] = PATH_OCTAVES,
    ) -> None:
        if reference_price <= 0:
            raise ValueError(f"reference_price must be > 0, got {reference_price}")
        if hourly_volatility < 0:
            raise ValueError(f"hourly_volatility must be >= 0, got {hourly_volatility}")
        self._log_reference = math.log(reference_price)
        self._seed = seed
        self._symbol = symbol
        # Amplitude a_L = k * sqrt(L) makes each octave add variance in proportion to its time scale, like a
        # Brownian path. An octave finer than the horizon T contributes ~2*a_L^2 to the variance of a T-long
        # return, a coarser one ~2*a_L^2*(T/L)^2 (it is nearly linear over T); k is solved from that sum so the
        # one-hour return has the requested standard deviation. Octave values have unit variance.
        horizon = 3600.0
        exposure = sum(2.0 * length * min(1.0, (horizon / length) ** 2) for length in octaves)
        scale = hourly_volatility / math.sqrt(exposure) if exposure else 0.0
        self._octaves: list[tuple[int, float, float]] = []
        for index, length in enumerate(octaves):
            # A per-octave lattice offset, so the octaves' knots do not all line up at round unix times.
            offset = (stable_seed(seed, symbol, "offset", index) / _UNIT) * length
            self._octaves.append((index, length, offset))
        self._amplitudes = [scale * math.sqrt(length) for length in octaves]

    @property
    def max_deviation(self) -> float:
        """The largest possible |log(price / reference)|: every octave at its extreme at once."""
        return _SQRT3 * sum(self._amplitudes)

    def _knot(self, octave: int, index: int) -> float:
        # Uniform on [-sqrt(3), sqrt(3)): unit variance and, unlike a Gaussian, bounded.
        return (stable_seed(self._seed, self._symbol, "path", octave, index) / _UNIT * 2.0 - 1.0) * _SQRT3

    def log_price_at(self, unix_time: float) -> float:
        total = self._log_reference
        for (octave, length, offset), amplitude in zip(self._octaves, self._amplitudes, strict=True):
            position = (unix_time + offset) / length
            index = math.floor(position)
            frac = position - index
            # Smoothstep: continuous and with a continuous slope, so coarse octaves drift instead of zig-zagging.
            weight = frac * frac * (3.0 - 2.0 * frac)
            left, right = self._knot(octave, index), self._knot(octave, index + 1)
            total += amplitude * (left + (right - left) * weight)
        return total

    def price_at(self, unix_time: float) -> float:
        return math.exp(self.log_price_at(unix_time))


class MarketModel:
    """The market of one exchange: a price path per symbol plus that exchange's spread, bias and tick interval.

    `price_bias` shifts every quoted price (bid, ask, last, book) relative to the underlying path: 0.005 quotes
    0.5% high. The path itself depends only on `seed` and the symbol; the tick's time is `tick * tick_interval_s`,
    so equal seeds and intervals give equal underlying prices tick for tick, and equal seeds with different
    intervals still agree at every instant both sample.
    """

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        seed: int,
        spread_bps: float,
        price_bias: float = 0.0,
        tick_interval_s: float = 1.0,
        hourly_volatility: float = DEFAULT_HOURLY_VOLATILITY,
        reference_prices: dict[str, float] | None = None,
    ) -> None:
        if tick_interval_s <= 0:
            raise ValueError(f"tick_interval_s must be > 0, got {tick_interval_s}")
        self._seed = seed
        self._spread_bps = spread_bps
        self._bias = price_bias
        self._tick_interval_s = tick_interval_s
        prices = {**REFERENCE_PRICES, **(reference_prices or {})}
        self._paths: dict[str, PricePath] = {
            symbol: PricePath(
                prices.get(symbol.split("-")[0], DEFAULT_REFERENCE_PRICE),
                seed=seed,
                symbol=symbol,
                hourly_volatility=hourly_volatility,
            )
            for symbol in symbols
        }
        # Every get_quote, ticker read and reserve in a tick asks for the same few snapshots; computing one
        # costs ~100 us (hashing and seeding), so the current tick's are kept.
        self._quote_cache: dict[tuple[str, int], QuoteSnapshot] = {}

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._paths)

    @property
    def tick_interval_s(self) -> float:
        return self._tick_interval_s

    # -- time --------------------------------------------------------------------------

    def tick_at(self, unix_time: float) -> int:
        """The absolute tick in force at `unix_time`: floor(unix_time / tick_interval_s)."""
        return math.floor(unix_time / self._tick_interval_s)

    def tick_time(self, tick: int) -> float:
        """Unix time at which `tick` began, i.e. when the prices of that tick were made."""
        return tick * self._tick_interval_s

    # -- prices ------------------------------------------------------------------------

    def _path(self, symbol: str) -> PricePath:
        try:
            return self._paths[symbol]
        except KeyError:
            known = ", ".join(self._paths)
            raise UnknownSymbolError(f"unknown symbol {symbol!r}; this exchange lists: {known}") from None

    def underlying_mid(self, symbol: str, tick: int) -> float:
        """The unbiased path price (what a perfectly fair exchange would quote as mid)."""
        return self._path(symbol).price_at(self.tick_time(tick))

    def mid(self, symbol: str, tick: int) -> float:
        return self.underlying_mid(symbol, tick) * (1.0 + self._bias)

    def _bid_ask(self, symbol: str, tick: int) -> tuple[float, float]:
        mid = self.mid(symbol, tick)
        half = mid * self._spread_bps / 20_000.0
        increment = price_increment(mid)
        bid = round_down(mid - half, increment)
        # A crossed or locked book is never shown: with a zero spread the ask still
        # sits one increment above the bid.
        ask = max(round_up(mid + half, increment), round(bid + increment, _decimals(increment)))
        return bid, ask

    def _last_trade(self, symbol: str, tick: int, bid: float, ask: float) -> tuple[float, float]:
        """A plausible last trade: somewhere in the spread, a size worth $500..$50k; fixed per tick."""
        rng = random.Random(stable_seed(self._seed, symbol, "trade", tick))
        increment = price_increment(bid)
        price = round(bid + (ask - bid) * rng.random(), _decimals(increment))
        notional = math.exp(rng.uniform(math.log(500.0), math.log(50_000.0)))
        return price, _round_size(notional / price)

    def quote(self, symbol: str, tick: int) -> QuoteSnapshot:
        cached = self._quote_cache.get((symbol, tick))
        if cached is not None:
            return cached
        bid, ask = self._bid_ask(symbol, tick)
        last, size = self._last_trade(symbol, tick, bid, ask)
        # The touch sizes come from the book itself, so quote and book can never disagree.
        top = self.order_book(symbol, 1, tick)
        snapshot = QuoteSnapshot(
            symbol=symbol,
            bid=bid,
            ask=ask,
            last=last,
            size=size,
            mid=round((bid + ask) / 2, 8),
            tick=tick,
            bid_size=top.bids[0][1],
            ask_size=top.asks[0][1],
        )
        if len(self._quote_cache) >= 4 * len(self._paths):
            self._quote_cache.clear()
        self._quote_cache[(symbol, tick)] = snapshot
        return snapshot

    def order_book(self, symbol: str, depth: int, tick: int) -> OrderBookSnapshot:
        """`depth` levels per side; the same tick always yields the same book, and a shallower book is a prefix
        of a deeper one (levels are drawn best first from one per-tick stream)."""
        if not 1 <= depth <= MAX_BOOK_DEPTH:
            raise ValueError(f"depth must be between 1 and {MAX_BOOK_DEPTH}, got {depth}")
        bid, ask = self._bid_ask(symbol, tick)
        increment = price_increment(bid)
        # Levels one basis point apart (at least one increment) so deep books stay near the touch.
        step = max(increment, round_up(bid * 1e-4, increment))
        rng = random.Random(stable_seed(self._seed, symbol, "book", tick))
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
        return OrderBookSnapshot(symbol=symbol, bids=tuple(bids), asks=tuple(asks), tick=tick)

    def walk_book(self, symbol: str, side: Literal["buy", "sell"], quantity: float | Decimal, tick: int) -> BookFill:
        """Fill `quantity` against the asks (buy) or bids (sell) of the MAX_BOOK_DEPTH-level book at `tick`.

        The book is not depleted by fills: the simulation redraws it every tick, and each order is priced
        against the book as `get_order_book` shows it. Raises InsufficientLiquidityError beyond the full depth.
        """
        qty = Decimal(str(quantity))
        if not qty > 0:
            raise ValueError(f"quantity must be > 0, got {quantity}")
        book = self.order_book(symbol, MAX_BOOK_DEPTH, tick)
        levels = book.asks if side == "buy" else book.bids
        remaining = qty
        notional = Decimal(0)
        used = 0
        for price, size in levels:
            take = min(remaining, Decimal(str(size)))
            notional += take * Decimal(str(price))
            remaining -= take
            used += 1
            if remaining == 0:
                break
        if remaining > 0:
            available = sum((Decimal(str(size)) for _, size in levels), Decimal(0))
            word = "asks" if side == "buy" else "bids"
            raise InsufficientLiquidityError(
                f"not enough liquidity to {side} {qty} {symbol}: the {len(levels)} {word} levels of the book hold"
                f" only {available}"
            )
        return BookFill(
            symbol=symbol,
            side=side,
            quantity=qty,
            price=(notional / qty).quantize(FILL_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN),
            best_price=levels[0][0],
            worst_price=levels[used - 1][0],
            levels=used,
            tick=tick,
        )


def _round_size(size: float) -> float:
    # Six decimals: fine enough for BTC lots, and never rounds a real size to zero.
    return max(round(size, 6), 1e-6)
