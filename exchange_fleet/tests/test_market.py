"""Market model: deterministic walks, sane quotes, bias, order books (pure, no I/O)."""

import pytest

from exchange_fleet.market import MAX_BOOK_DEPTH, MarketModel, UnknownSymbolError

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")


def make(seed: int = 1, bias: float = 0.0, spread_bps: float = 5.0) -> MarketModel:
    return MarketModel(SYMBOLS, seed=seed, spread_bps=spread_bps, price_bias=bias)


def test_same_seed_same_walk_different_seed_different_walk() -> None:
    a, b, c = make(1), make(1), make(2)
    for _ in range(50):
        a.step(), b.step(), c.step()
    assert a.quote("BTC-USD") == b.quote("BTC-USD")
    assert a.quote("BTC-USD").mid != c.quote("BTC-USD").mid


def test_quotes_are_uncrossed_and_last_inside_spread() -> None:
    market = make(spread_bps=0.0)  # even a zero spread never shows a locked book
    for _ in range(200):
        market.step()
        for symbol in SYMBOLS:
            q = market.quote(symbol)
            assert 0 < q.bid < q.ask
            assert q.bid <= q.last <= q.ask
            assert q.size > 0


def test_spread_matches_bps() -> None:
    q = make(spread_bps=10.0).quote("BTC-USD")
    assert (q.ask - q.bid) / q.mid * 10_000 == pytest.approx(10.0, abs=0.05)


def test_bias_shifts_every_price_relative_to_reference() -> None:
    reference, biased = make(seed=3), make(seed=3, bias=0.005)
    for _ in range(20):
        reference.step(), biased.step()
    for symbol in SYMBOLS:
        ref, high = reference.quote(symbol), biased.quote(symbol)
        assert high.mid / ref.mid == pytest.approx(1.005, rel=1e-4)
        assert high.bid > ref.ask


def test_walk_moves_but_stays_near_anchor() -> None:
    market = make()
    start = market.underlying_mid("ETH-USD")
    prices = []
    for _ in range(2000):
        market.step()
        prices.append(market.underlying_mid("ETH-USD"))
    assert len(set(prices)) > 1000
    assert 0.7 * start < min(prices) and max(prices) < 1.3 * start


def test_order_book_shape_and_determinism() -> None:
    market = make()
    market.step()
    book = market.order_book("SOL-USD", depth=25)
    assert len(book.bids) == len(book.asks) == 25
    bid_prices = [p for p, _ in book.bids]
    ask_prices = [p for p, _ in book.asks]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert ask_prices == sorted(ask_prices)
    assert bid_prices[0] < ask_prices[0]
    assert all(size > 0 for _, size in book.bids + book.asks)
    q = market.quote("SOL-USD")
    assert (bid_prices[0], ask_prices[0]) == (q.bid, q.ask)
    assert market.order_book("SOL-USD", depth=25) == book  # same tick, same book


@pytest.mark.parametrize("depth", [0, MAX_BOOK_DEPTH + 1, -3])
def test_order_book_depth_bounds(depth: int) -> None:
    with pytest.raises(ValueError, match="depth must be between 1 and 100"):
        make().order_book("BTC-USD", depth=depth)


def test_unknown_symbol() -> None:
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'DOGE-USD'.*BTC-USD"):
        make().quote("DOGE-USD")
