"""Market model: prices as a function of the absolute tick, sane quotes, bias, order books, book walking."""

import math
import statistics
from decimal import Decimal

import pytest

from exchange_fleet.market import (
    MAX_BOOK_DEPTH,
    InsufficientLiquidityError,
    MarketModel,
    UnknownSymbolError,
)

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
# Ticks of late 2025 at one-second intervals: the absolute indices a live exchange uses.
NOW_TICK = 1_760_000_000
HOUR = 3600
DAY = 24 * HOUR


def make(seed: int = 1, bias: float = 0.0, spread_bps: float = 5.0, tick_interval_s: float = 1.0) -> MarketModel:
    return MarketModel(SYMBOLS, seed=seed, spread_bps=spread_bps, price_bias=bias, tick_interval_s=tick_interval_s)


def test_prices_depend_only_on_seed_symbol_and_tick() -> None:
    a, b, c = make(1), make(1), make(2)
    # b has been asked about other ticks first, in another order: a model keeps no path state, which is what lets
    # a restarted exchange quote what it would have quoted had it never stopped.
    for tick in (NOW_TICK + 500, NOW_TICK - 7, NOW_TICK + 3):
        b.quote("BTC-USD", tick)
    assert a.quote("BTC-USD", NOW_TICK) == b.quote("BTC-USD", NOW_TICK)
    assert a.order_book("ETH-USD", 10, NOW_TICK) == b.order_book("ETH-USD", 10, NOW_TICK)
    assert a.quote("BTC-USD", NOW_TICK).mid != c.quote("BTC-USD", NOW_TICK).mid


def test_exchanges_with_different_tick_intervals_agree_at_shared_instants() -> None:
    fast, slow = make(tick_interval_s=0.5), make(tick_interval_s=60.0)
    for minute in range(NOW_TICK // 60, NOW_TICK // 60 + 5):
        assert fast.underlying_mid("SOL-USD", minute * 120) == slow.underlying_mid("SOL-USD", minute)


def test_tick_is_the_wall_clock_divided_by_the_interval() -> None:
    market = make(tick_interval_s=0.25)
    assert market.tick_at(1_000.0) == 4_000
    assert market.tick_at(1_000.2) == 4_000
    assert market.tick_at(1_000.25) == 4_001
    assert market.tick_time(4_001) == 1_000.25


def test_quotes_are_uncrossed_and_last_inside_spread() -> None:
    market = make(spread_bps=0.0)  # even a zero spread never shows a locked book
    for tick in range(NOW_TICK, NOW_TICK + 200):
        for symbol in SYMBOLS:
            q = market.quote(symbol, tick)
            assert 0 < q.bid < q.ask
            assert q.bid <= q.last <= q.ask
            assert q.size > 0 and q.bid_size > 0 and q.ask_size > 0
            assert q.tick == tick


def test_spread_matches_bps() -> None:
    q = make(spread_bps=10.0).quote("BTC-USD", NOW_TICK)
    assert (q.ask - q.bid) / q.mid * 10_000 == pytest.approx(10.0, abs=0.05)


def test_bias_shifts_every_price_relative_to_reference() -> None:
    reference, biased = make(seed=3), make(seed=3, bias=0.005)
    for symbol in SYMBOLS:
        ref, high = reference.quote(symbol, NOW_TICK), biased.quote(symbol, NOW_TICK)
        assert high.mid / ref.mid == pytest.approx(1.005, rel=1e-4)
        assert high.bid > ref.ask


@pytest.mark.parametrize(("symbol", "low", "high"), [("BTC-USD", 59_000, 71_000), ("ETH-USD", 2_900, 3_500)])
def test_path_wanders_realistically_but_stays_near_its_reference(symbol: str, low: float, high: float) -> None:
    market = make(seed=42)
    # Sixty days, one sample every ten minutes.
    prices = [market.underlying_mid(symbol, NOW_TICK + i * 600) for i in range(60 * 144)]
    assert low < min(prices) and max(prices) < high
    hourly = [math.log(prices[i + 6] / prices[i]) for i in range(0, len(prices) - 6, 6)]
    assert 0.002 < statistics.pstdev(hourly) < 0.01  # about half a percent an hour
    daily_ranges = [max(prices[i : i + 144]) / min(prices[i : i + 144]) - 1 for i in range(0, len(prices), 144)]
    assert statistics.median(daily_ranges) > 0.01  # percent-level moves within a day


def test_consecutive_ticks_move_a_little_and_often() -> None:
    market = make()
    mids = [market.underlying_mid("ETH-USD", tick) for tick in range(NOW_TICK, NOW_TICK + 2_000)]
    steps = [abs(math.log(b / a)) for a, b in zip(mids, mids[1:], strict=False)]
    assert max(steps) < 0.001  # no jumps between seconds
    cents = [round(m, 2) for m in mids]
    changed = sum(1 for a, b in zip(cents, cents[1:], strict=False) if a != b)
    assert changed > 0.9 * len(steps)  # but a new price nearly every tick


def test_order_book_shape_determinism_and_agreement_with_the_quote() -> None:
    market = make()
    book = market.order_book("SOL-USD", 25, NOW_TICK)
    assert len(book.bids) == len(book.asks) == 25
    bid_prices = [p for p, _ in book.bids]
    ask_prices = [p for p, _ in book.asks]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert ask_prices == sorted(ask_prices)
    assert bid_prices[0] < ask_prices[0]
    assert all(size > 0 for _, size in book.bids + book.asks)
    q = market.quote("SOL-USD", NOW_TICK)
    assert (book.bids[0], book.asks[0]) == ((q.bid, q.bid_size), (q.ask, q.ask_size))
    assert market.order_book("SOL-USD", 25, NOW_TICK) == book  # same tick, same book
    deepest = market.order_book("SOL-USD", MAX_BOOK_DEPTH, NOW_TICK)
    assert deepest.bids[:25] == book.bids and deepest.asks[:25] == book.asks  # a shallow book is a prefix
    assert market.order_book("SOL-USD", 25, NOW_TICK + 1) != book


def test_walking_within_the_best_level_fills_at_the_touch() -> None:
    market = make()
    q = market.quote("BTC-USD", NOW_TICK)
    buy = market.walk_book("BTC-USD", "buy", q.ask_size / 2, NOW_TICK)
    sell = market.walk_book("BTC-USD", "sell", q.bid_size, NOW_TICK)
    assert (buy.price, buy.levels, buy.worst_price) == (Decimal(str(q.ask)), 1, q.ask)
    assert (sell.price, sell.levels, sell.worst_price) == (Decimal(str(q.bid)), 1, q.bid)


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_larger_orders_pay_the_volume_weighted_price_of_the_levels_walked(side: str) -> None:
    market = make()
    book = market.order_book("ETH-USD", MAX_BOOK_DEPTH, NOW_TICK)
    levels = book.asks if side == "buy" else book.bids
    # All of the first three levels and half of the fourth.
    quantity = sum(Decimal(str(size)) for _, size in levels[:3]) + Decimal(str(levels[3][1])) / 2
    taken = [(Decimal(str(p)), Decimal(str(s))) for p, s in levels[:3]] + [
        (Decimal(str(levels[3][0])), Decimal(str(levels[3][1])) / 2)
    ]
    expected = sum(p * s for p, s in taken) / quantity
    fill = market.walk_book("ETH-USD", side, quantity, NOW_TICK)  # type: ignore[arg-type]
    assert fill.levels == 4 and fill.worst_price == levels[3][0] and fill.best_price == levels[0][0]
    assert fill.price == pytest.approx(expected, abs=Decimal("1e-8"))
    if side == "buy":
        assert levels[0][0] < fill.price < levels[3][0]
    else:
        assert levels[3][0] < fill.price < levels[0][0]


def test_orders_beyond_the_whole_book_are_refused() -> None:
    market = make()
    book = market.order_book("BTC-USD", MAX_BOOK_DEPTH, NOW_TICK)
    everything = sum(Decimal(str(size)) for _, size in book.asks)
    assert market.walk_book("BTC-USD", "buy", everything, NOW_TICK).levels == MAX_BOOK_DEPTH
    with pytest.raises(InsufficientLiquidityError, match=r"not enough liquidity to buy .* the 100 asks levels"):
        market.walk_book("BTC-USD", "buy", everything + Decimal("0.001"), NOW_TICK)


@pytest.mark.parametrize("depth", [0, MAX_BOOK_DEPTH + 1, -3])
def test_order_book_depth_bounds(depth: int) -> None:
    with pytest.raises(ValueError, match="depth must be between 1 and 100"):
        make().order_book("BTC-USD", depth, NOW_TICK)


def test_unknown_symbol() -> None:
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'DOGE-USD'.*BTC-USD"):
        make().quote("DOGE-USD", NOW_TICK)
    with pytest.raises(UnknownSymbolError):
        make().walk_book("DOGE-USD", "buy", 1, NOW_TICK)
