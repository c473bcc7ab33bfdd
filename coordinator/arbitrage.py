"""The arithmetic of a cross-exchange arbitrage analysis: pure functions over market snapshots, no I/O.

A `MarketView` is what one server said about one symbol (its quote and, when available, its order book).
`analyse` prices every ordered pair "buy on A, sell on B" by walking A's asks and B's bids for the requested
size, charges both taker fees and an optional slippage allowance, and ranks the pairs by net return in basis
points. Views too old (or too far in the future) to trust are left out with a reason, and so are pairs whose
books are too thin for the size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

BPS = 10_000
FUTURE_TOLERANCE_SECONDS = 5.0  # clocks of the exchanges and of the coordinator are never quite in step
MONEY_DECIMALS = 8  # prices, sizes, notionals, fees, profits in to_json()
BPS_DECIMALS = 4
# Books arrive as JSON floats: depth that sums to the quantity up to float noise counts as enough.
_DEPTH_TOLERANCE = 1e-9

Level = tuple[float, float]  # (price, size)


def _money(value: float) -> float:
    return round(value, MONEY_DECIMALS)


def _bps(value: float) -> float:
    return round(value, BPS_DECIMALS)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _levels_json(levels: Iterable[Level]) -> list[list[float]]:
    return [[_money(price), _money(size)] for price, size in levels]


# -- market snapshots -------------------------------------------------------------------


@dataclass
class MarketView:
    """One server's market for one symbol at one moment.

    `bids`/`asks` are order-book levels, best first. Left empty, each side becomes the quote's best level with
    its size as the only level, so a quote alone is enough for an analysis at the touch.
    """

    server: str
    exchange: str
    symbol: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    taker_fee: float
    quoted_at: datetime
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)

    def __post_init__(self) -> None:
        where = f"market view of {self.server or '?'}/{self.symbol or '?'}"
        for name in ("server", "exchange", "symbol"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{where}: {name} must be a non-empty string, got {value!r}")
        for name in ("bid", "ask", "bid_size", "ask_size", "taker_fee"):
            if not _is_number(getattr(self, name)):
                raise ValueError(f"{where}: {name} must be a finite number, got {getattr(self, name)!r}")
        if self.bid <= 0 or self.ask <= 0:
            raise ValueError(f"{where}: prices must be positive, got bid={self.bid} ask={self.ask}")
        if self.bid > self.ask:
            raise ValueError(f"{where}: crossed quote, bid {self.bid} > ask {self.ask}")
        if self.bid_size < 0 or self.ask_size < 0:
            raise ValueError(f"{where}: sizes must not be negative, got {self.bid_size}/{self.ask_size}")
        if not 0 <= self.taker_fee < 1:
            raise ValueError(f"{where}: taker_fee must be a fraction in [0, 1), got {self.taker_fee}")
        if not isinstance(self.quoted_at, datetime) or self.quoted_at.utcoffset() is None:
            raise ValueError(f"{where}: quoted_at must be a timezone-aware datetime, got {self.quoted_at!r}")
        self.bids = _checked_levels(self.bids, descending=True, where=f"{where}: bids")
        self.asks = _checked_levels(self.asks, descending=False, where=f"{where}: asks")
        if not self.bids:
            self.bids = [(float(self.bid), float(self.bid_size))]
        if not self.asks:
            self.asks = [(float(self.ask), float(self.ask_size))]

    @classmethod
    def from_answers(cls, server: str, quote: Mapping[str, Any], book: Mapping[str, Any] | None) -> MarketView:
        """Build a view from the structured results of `get_quote` and (optionally) `get_order_book`.

        `quoted_at` is the quote's tick time, or the book's when the book is older: the analysis prices off both,
        so the view is only as fresh as its older half. No book (None, or an empty object, as a caller gets from a
        result without structured content) means trading at the quote's touch.
        """
        if not isinstance(quote, Mapping):
            raise ValueError(f"{server}: the quote must be an object, got {type(quote).__name__}")
        symbol = _text(quote, "symbol", f"{server}: quote")
        quoted_at = _timestamp(quote, f"{server}: quote")
        bids: list[Level] = []
        asks: list[Level] = []
        if book is not None and book != {}:
            if not isinstance(book, Mapping):
                raise ValueError(f"{server}: the order book must be an object, got {type(book).__name__}")
            book_symbol = book.get("symbol", symbol)
            if book_symbol != symbol:
                raise ValueError(f"{server}: the order book is for {book_symbol!r}, the quote for {symbol!r}")
            bids = _parsed_levels(book, "bids", f"{server}: book")
            asks = _parsed_levels(book, "asks", f"{server}: book")
            if "timestamp" in book:
                quoted_at = min(quoted_at, _timestamp(book, f"{server}: book"))
        touch = {
            "bid": _number(quote, "bid", f"{server}: quote"),
            "ask": _number(quote, "ask", f"{server}: quote"),
            "bid_size": _number(quote, "bid_size", f"{server}: quote"),
            "ask_size": _number(quote, "ask_size", f"{server}: quote"),
        }
        # The two calls may straddle a price tick: the book is what a fill walks, so its best levels are the touch
        # shown (and used), never a quote from another tick.
        if bids and asks:
            touch = {"bid": bids[0][0], "ask": asks[0][0], "bid_size": bids[0][1], "ask_size": asks[0][1]}
        return cls(
            server=server,
            exchange=_text(quote, "exchange", f"{server}: quote"),
            symbol=symbol,
            **touch,
            taker_fee=_number(quote, "taker_fee", f"{server}: quote"),
            quoted_at=quoted_at,
            bids=bids,
            asks=asks,
        )

    def age_seconds(self, now: datetime) -> float:
        return (now - self.quoted_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "bid": _money(self.bid),
            "ask": _money(self.ask),
            "bid_size": _money(self.bid_size),
            "ask_size": _money(self.ask_size),
            "taker_fee": self.taker_fee,
            "quoted_at": self.quoted_at.isoformat(),
            "bids": _levels_json(self.bids),
            "asks": _levels_json(self.asks),
        }


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    if key not in data:
        raise ValueError(f"{where}.{key} is missing")
    value = data[key]
    if not _is_number(value):
        raise ValueError(f"{where}.{key} must be a finite number, got {value!r}")
    return float(value)


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}.{key} must be a non-empty string, got {value!r}")
    return value


def _timestamp(data: Mapping[str, Any], where: str) -> datetime:
    value = data.get("timestamp")
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{where}.timestamp is not an ISO 8601 time: {value!r}") from None
    else:
        raise ValueError(f"{where}.timestamp must be an ISO 8601 string, got {value!r}")
    # The exchanges speak UTC; a timestamp without an offset is read as such rather than as local time.
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


def _parsed_levels(book: Mapping[str, Any], key: str, where: str) -> list[Level]:
    raw = book.get(key)
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{where}.{key} must be a list of [price, size] levels, got {raw!r}")
    levels: list[Level] = []
    for index, level in enumerate(raw):
        if not isinstance(level, list | tuple) or len(level) != 2 or not all(_is_number(v) for v in level):
            raise ValueError(f"{where}.{key}[{index}] must be [price, size] numbers, got {level!r}")
        levels.append((float(level[0]), float(level[1])))
    return levels


def _checked_levels(levels: Iterable[Level], *, descending: bool, where: str) -> list[Level]:
    checked: list[Level] = []
    for index, level in enumerate(levels):
        try:
            price, size = level
        except (TypeError, ValueError):
            raise ValueError(f"{where}[{index}] must be a (price, size) pair, got {level!r}") from None
        if not (_is_number(price) and _is_number(size)) or price <= 0 or size < 0:
            raise ValueError(f"{where}[{index}] needs a positive price and a non-negative size, got {level!r}")
        if checked and (price > checked[-1][0] if descending else price < checked[-1][0]):
            raise ValueError(f"{where} are not best first: {price} after {checked[-1][0]}")
        checked.append((float(price), float(size)))
    return checked


# -- walking a book ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fill:
    """Taking `quantity` from one side of a book: what it costs (buy) or brings (sell)."""

    quantity: float
    average_price: float  # volume-weighted over the levels used
    notional: float
    worst_price: float
    levels_used: int

    def to_json(self) -> dict[str, Any]:
        return {
            "quantity": _money(self.quantity),
            "average_price": _money(self.average_price),
            "notional": _money(self.notional),
            "worst_price": _money(self.worst_price),
            "levels_used": self.levels_used,
        }


def walk_book(levels: Sequence[Level], quantity: float) -> Fill | None:
    """Take `quantity` from `levels` (best first) as a market order would; None when the book is too thin."""
    if not _is_number(quantity) or quantity <= 0:
        raise ValueError(f"quantity must be a positive number, got {quantity!r}")
    remaining = quantity
    notional = 0.0
    worst_price = 0.0
    used = 0
    for price, size in levels:
        if remaining <= quantity * _DEPTH_TOLERANCE:
            break
        if size <= 0:
            continue
        take = min(remaining, size)
        notional += take * price
        remaining -= take
        worst_price = price
        used += 1
    if used == 0 or remaining > quantity * _DEPTH_TOLERANCE:
        return None
    return Fill(
        quantity=quantity,
        average_price=notional / quantity,
        notional=notional,
        worst_price=worst_price,
        levels_used=used,
    )


def depth(levels: Iterable[Level]) -> float:
    """The total size of one side of a book."""
    return math.fsum(size for _, size in levels)


# -- the analysis -----------------------------------------------------------------------


@dataclass(frozen=True)
class Opportunity:
    """One priced pair: buy `size` of `symbol` on server `buy_on`, sell it on server `sell_on`.

    Every evaluated pair is one of these, profitable or not; `ArbitrageReport.opportunities` keeps those that
    clear the threshold.
    """

    symbol: str
    buy_on: str
    sell_on: str
    buy_price: float  # VWAP of the asks walked
    sell_price: float  # VWAP of the bids walked
    buy_fee: float
    sell_fee: float
    net_profit: float
    net_bps: float  # net profit per buy notional
    size: float
    gross_profit: float
    slippage: float
    buy_levels: int
    sell_levels: int

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "buy_on": self.buy_on,
            "sell_on": self.sell_on,
            "buy_price": _money(self.buy_price),
            "sell_price": _money(self.sell_price),
            "buy_fee": _money(self.buy_fee),
            "sell_fee": _money(self.sell_fee),
            # Both taker fees; slippage is its own figure: gross_profit - fees - slippage = net_profit.
            "fees": _money(self.buy_fee + self.sell_fee),
            "net_profit": _money(self.net_profit),
            "net_bps": _bps(self.net_bps),
            "size": _money(self.size),
            "gross_profit": _money(self.gross_profit),
            "slippage": _money(self.slippage),
            "buy_levels": self.buy_levels,
            "sell_levels": self.sell_levels,
        }


@dataclass(frozen=True)
class ExcludedView:
    server: str
    symbol: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"server": self.server, "symbol": self.symbol, "reason": self.reason}


@dataclass(frozen=True)
class SkippedPair:
    symbol: str
    buy_on: str
    sell_on: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "buy_on": self.buy_on, "sell_on": self.sell_on, "reason": self.reason}


@dataclass
class ArbitrageReport:
    """The outcome of `analyse`.

    `pairs_evaluated` counts every ordered pair considered, priced or skipped:
    `pairs_evaluated == len(all_pairs) + len(skipped)`.
    """

    evaluated_at: datetime
    size: float
    min_profit_bps: float
    slippage_bps: float
    max_age_seconds: float
    views: list[MarketView]  # the views used
    excluded: list[ExcludedView]
    opportunities: list[Opportunity]
    all_pairs: list[Opportunity]
    skipped: list[SkippedPair]
    pairs_evaluated: int

    @property
    def best(self) -> Opportunity | None:
        return self.opportunities[0] if self.opportunities else None

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluated_at": self.evaluated_at.isoformat(),
            "size": _money(self.size),
            "min_profit_bps": _bps(self.min_profit_bps),
            "slippage_bps": _bps(self.slippage_bps),
            "max_age_seconds": self.max_age_seconds,
            "pairs_evaluated": self.pairs_evaluated,
            "opportunities": [o.to_json() for o in self.opportunities],
            "all_pairs": [o.to_json() for o in self.all_pairs],
            "skipped": [s.to_json() for s in self.skipped],
            "excluded": [e.to_json() for e in self.excluded],
            "views": [v.to_json() for v in self.views],
        }


def analyse(
    views: Sequence[MarketView],
    *,
    size: float,
    min_profit_bps: float,
    slippage_bps: float = 0.0,
    max_age_seconds: float = 10.0,
    now: datetime,
) -> ArbitrageReport:
    """Price every ordered (buy_on, sell_on) pair of servers quoting the same symbol, best net return first."""
    if not _is_number(size) or size <= 0:
        raise ValueError(f"size must be a positive number, got {size!r}")
    if not _is_number(min_profit_bps):
        raise ValueError(f"min_profit_bps must be a finite number, got {min_profit_bps!r}")
    if not _is_number(slippage_bps) or slippage_bps < 0:
        raise ValueError(f"slippage_bps must be a non-negative number, got {slippage_bps!r}")
    if not _is_number(max_age_seconds) or max_age_seconds < 0:
        raise ValueError(f"max_age_seconds must be a non-negative number, got {max_age_seconds!r}")
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")

    seen: set[tuple[str, str]] = set()
    for view in views:
        key = (view.server, view.symbol)
        if key in seen:
            raise ValueError(f"views: more than one view of {view.symbol} from server {view.server!r}")
        seen.add(key)

    used: list[MarketView] = []
    excluded: list[ExcludedView] = []
    for view in views:
        reason = _staleness(view, now, max_age_seconds)
        if reason:
            excluded.append(ExcludedView(server=view.server, symbol=view.symbol, reason=reason))
        else:
            used.append(view)

    by_symbol: dict[str, list[MarketView]] = {}
    for view in used:
        by_symbol.setdefault(view.symbol, []).append(view)

    priced: list[Opportunity] = []
    skipped: list[SkippedPair] = []
    for symbol in sorted(by_symbol):
        for buy in by_symbol[symbol]:
            for sell in by_symbol[symbol]:
                if buy.server == sell.server:
                    continue
                outcome = _price_pair(buy, sell, size=size, slippage_bps=slippage_bps)
                if isinstance(outcome, SkippedPair):
                    skipped.append(outcome)
                else:
                    priced.append(outcome)

    priced.sort(key=lambda o: (-o.net_bps, -o.net_profit, o.symbol, o.buy_on, o.sell_on))
    return ArbitrageReport(
        evaluated_at=now,
        size=size,
        min_profit_bps=min_profit_bps,
        slippage_bps=slippage_bps,
        max_age_seconds=max_age_seconds,
        views=used,
        excluded=excluded,
        opportunities=[o for o in priced if o.net_bps >= min_profit_bps],
        all_pairs=priced,
        skipped=skipped,
        pairs_evaluated=len(priced) + len(skipped),
    )


def _staleness(view: MarketView, now: datetime, max_age_seconds: float) -> str:
    age = view.age_seconds(now)
    if age > max_age_seconds:
        return f"stale: {age:.1f} s old, limit {max_age_seconds:g} s"
    if -age > FUTURE_TOLERANCE_SECONDS:
        return f"from the future: {-age:.1f} s ahead, tolerance {FUTURE_TOLERANCE_SECONDS:g} s"
    return ""


def _price_pair(buy: MarketView, sell: MarketView, *, size: float, slippage_bps: float) -> Opportunity | SkippedPair:
    bought = walk_book(buy.asks, size)
    sold = walk_book(sell.bids, size)
    if bought is None or sold is None:
        reasons = []
        if bought is None:
            reasons.append(f"not enough depth to buy {size:g} on {buy.server}: its asks hold {depth(buy.asks):g}")
        if sold is None:
            reasons.append(f"not enough depth to sell {size:g} on {sell.server}: its bids hold {depth(sell.bids):g}")
        return SkippedPair(symbol=buy.symbol, buy_on=buy.server, sell_on=sell.server, reason="; ".join(reasons))
    buy_fee = bought.notional * buy.taker_fee
    sell_fee = sold.notional * sell.taker_fee
    slippage = (bought.notional + sold.notional) * slippage_bps / BPS
    gross_profit = sold.notional - bought.notional
    net_profit = gross_profit - buy_fee - sell_fee - slippage
    return Opportunity(
        symbol=buy.symbol,
        buy_on=buy.server,
        sell_on=sell.server,
        buy_price=bought.average_price,
        sell_price=sold.average_price,
        buy_fee=buy_fee,
        sell_fee=sell_fee,
        net_profit=net_profit,
        net_bps=net_profit / bought.notional * BPS,
        size=size,
        gross_profit=gross_profit,
        slippage=slippage,
        buy_levels=bought.levels_used,
        sell_levels=sold.levels_used,
    )
