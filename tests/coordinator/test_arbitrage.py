"""The arbitrage arithmetic on small markets worked out by hand (the sums are spelled out in each test)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from coordinator.arbitrage import (
    ArbitrageReport,
    Fill,
    MarketView,
    Opportunity,
    analyse,
    walk_book,
)

NOW = datetime(2026, 7, 28, 12, 0, 0, tzinfo=UTC)


def view(
    server: str,
    *,
    bid: float,
    ask: float,
    fee: float = 0.001,
    bids: list[tuple[float, float]] | None = None,
    asks: list[tuple[float, float]] | None = None,
    symbol: str = "BTC-USD",
    size: float = 5.0,
    age: float = 1.0,
) -> MarketView:
    return MarketView(
        server=server,
        exchange=server,
        symbol=symbol,
        bid=bid,
        ask=ask,
        bid_size=size,
        ask_size=size,
        taker_fee=fee,
        quoted_at=NOW - timedelta(seconds=age),
        bids=bids or [],
        asks=asks or [],
    )


def pair(report: ArbitrageReport, buy_on: str, sell_on: str, symbol: str = "BTC-USD") -> Opportunity:
    (found,) = [p for p in report.all_pairs if (p.symbol, p.buy_on, p.sell_on) == (symbol, buy_on, sell_on)]
    return found


# -- walk_book ------------------------------------------------------------------------------


def test_walk_book_takes_the_best_levels_first_and_averages_by_volume():
    asks = [(100.0, 1.0), (101.0, 2.0), (103.0, 5.0)]

    fill = walk_book(asks, 4.0)

    # 1 @ 100 + 2 @ 101 + 1 @ 103 = 100 + 202 + 103 = 405, over 4 units
    assert fill == Fill(quantity=4.0, average_price=405 / 4, notional=405.0, worst_price=103.0, levels_used=3)


def test_walk_book_stays_on_the_first_level_when_it_is_deep_enough():
    fill = walk_book([(50.0, 10.0), (49.0, 10.0)], 3.0)

    assert fill is not None
    assert (fill.average_price, fill.notional, fill.worst_price, fill.levels_used) == (50.0, 150.0, 50.0, 1)


def test_walk_book_uses_the_whole_book_exactly_and_tolerates_float_noise():
    # 0.1 + 0.2 != 0.3 in binary floating point; that must not make a book "too thin" by 5e-17
    fill = walk_book([(10.0, 0.1), (11.0, 0.2)], 0.3)

    assert fill is not None
    assert fill.levels_used == 2
    assert fill.notional == pytest.approx(0.1 * 10 + 0.2 * 11)


def test_walk_book_answers_none_when_the_book_is_too_thin():
    assert walk_book([(100.0, 1.0), (101.0, 2.0)], 3.5) is None
    assert walk_book([], 1.0) is None


def test_walk_book_skips_empty_levels():
    fill = walk_book([(100.0, 0.0), (101.0, 2.0)], 1.0)

    assert fill is not None
    assert (fill.average_price, fill.levels_used) == (101.0, 1)


@pytest.mark.parametrize("quantity", [0, -1, math.nan, math.inf, True])
def test_walk_book_refuses_a_quantity_that_is_not_positive(quantity):
    with pytest.raises(ValueError, match="quantity"):
        walk_book([(100.0, 1.0)], quantity)


# -- analyse: worked examples ---------------------------------------------------------------


def test_two_exchanges_walking_two_levels_on_each_side():
    alpha = view(
        "alpha",
        bid=100.00,
        ask=100.10,
        fee=0.001,
        bids=[(100.00, 1.0), (99.90, 2.0)],
        asks=[(100.10, 1.0), (100.20, 2.0)],
    )
    beta = view(
        "beta",
        bid=100.60,
        ask=100.70,
        fee=0.0005,
        bids=[(100.60, 0.5), (100.50, 2.0)],
        asks=[(100.70, 1.0), (100.80, 2.0)],
    )

    report = analyse([alpha, beta], size=1.5, min_profit_bps=10, slippage_bps=2, now=NOW)

    assert report.pairs_evaluated == 2
    assert report.skipped == [] and report.excluded == []

    # Buy 1.5 on alpha: 1.0 @ 100.10 + 0.5 @ 100.20 = 100.10 + 50.10 = 150.20
    # Sell 1.5 on beta: 0.5 @ 100.60 + 1.0 @ 100.50 = 50.30 + 100.50 = 150.80
    # fees: 150.20 * 0.001 = 0.1502 and 150.80 * 0.0005 = 0.0754
    # slippage: (150.20 + 150.80) * 2 / 10_000 = 0.0602
    # net: 150.80 - 150.20 - 0.1502 - 0.0754 - 0.0602 = 0.3142, i.e. 0.3142 / 150.20 * 10_000 = 20.9188 bps
    best = pair(report, "alpha", "beta")
    assert best.buy_price == pytest.approx(150.20 / 1.5)
    assert best.sell_price == pytest.approx(150.80 / 1.5)
    assert (best.buy_levels, best.sell_levels) == (2, 2)
    assert best.gross_profit == pytest.approx(0.60)
    assert best.buy_fee == pytest.approx(0.1502)
    assert best.sell_fee == pytest.approx(0.0754)
    assert best.slippage == pytest.approx(0.0602)
    assert best.net_profit == pytest.approx(0.3142)
    assert best.net_bps == pytest.approx(0.3142 / 150.20 * 10_000)
    assert round(best.net_bps, 4) == 20.9188

    # The other way: buy on beta 1.0 @ 100.70 + 0.5 @ 100.80 = 151.10, sell on alpha 1.0 @ 100.00 + 0.5 @ 99.90
    # = 149.95; gross -1.15; fees 151.10 * 0.0005 = 0.07555 and 149.95 * 0.001 = 0.14995;
    # slippage (151.10 + 149.95) * 0.0002 = 0.06021; net = -1.15 - 0.07555 - 0.14995 - 0.06021 = -1.43571
    worst = pair(report, "beta", "alpha")
    assert worst.gross_profit == pytest.approx(-1.15)
    assert worst.buy_fee == pytest.approx(0.07555)
    assert worst.sell_fee == pytest.approx(0.14995)
    assert worst.slippage == pytest.approx(0.06021)
    assert worst.net_profit == pytest.approx(-1.43571)

    assert report.all_pairs == [best, worst]
    assert report.opportunities == [best]
    assert report.best is best


def three_exchanges() -> list[MarketView]:
    # Books at the touch only (deep enough for size 1): the quote's best level stands in for the book.
    return [
        view("alpha", bid=99.90, ask=100.00, fee=0.001),
        view("beta", bid=100.40, ask=100.50, fee=0.001),
        view("gamma", bid=100.30, ask=100.35, fee=0.0),
    ]


def test_three_exchanges_price_all_six_ordered_pairs_and_rank_them_by_net_return():
    report = analyse(three_exchanges(), size=1, min_profit_bps=0, now=NOW)

    # pair            gross                   fees                       net       net bps
    # alpha -> beta   100.40 - 100.00 = 0.40  0.1000 + 0.1004 = 0.2004    0.1996   19.96
    # alpha -> gamma  100.30 - 100.00 = 0.30  0.1000 + 0      = 0.1000    0.2000   20.00
    # gamma -> beta   100.40 - 100.35 = 0.05  0      + 0.1004 = 0.1004   -0.0504   -5.0224
    # beta -> gamma   100.30 - 100.50 = -0.20 0.1005 + 0      = 0.1005   -0.3005  -29.9005
    # gamma -> alpha   99.90 - 100.35 = -0.45 0      + 0.0999 = 0.0999   -0.5499  -54.7982
    # beta -> alpha    99.90 - 100.50 = -0.60 0.1005 + 0.0999 = 0.2004   -0.8004  -79.6418
    expected = [
        ("alpha", "gamma", 0.30, 0.2000),
        ("alpha", "beta", 0.40, 0.1996),
        ("gamma", "beta", 0.05, -0.0504),
        ("beta", "gamma", -0.20, -0.3005),
        ("gamma", "alpha", -0.45, -0.5499),
        ("beta", "alpha", -0.60, -0.8004),
    ]
    assert report.pairs_evaluated == 6
    assert [(p.buy_on, p.sell_on) for p in report.all_pairs] == [(b, s) for b, s, _, _ in expected]
    for found, (_, _, gross, net) in zip(report.all_pairs, expected, strict=True):
        assert found.gross_profit == pytest.approx(gross)
        assert found.net_profit == pytest.approx(net)
        assert found.net_bps == pytest.approx(net / found.buy_price * 10_000)
    assert round(pair(report, "gamma", "alpha").net_bps, 4) == -54.7982

    # min_profit_bps=0 keeps exactly the two profitable pairs, best first
    assert [(o.buy_on, o.sell_on) for o in report.opportunities] == [("alpha", "gamma"), ("alpha", "beta")]


def test_fees_turn_a_gross_profit_into_a_net_loss():
    report = analyse(three_exchanges(), size=1, min_profit_bps=0, now=NOW)

    # Buying on gamma at 100.35 and selling on beta at 100.40 makes 0.05 before fees, but beta charges
    # 0.001 * 100.40 = 0.1004 to sell: 0.05 - 0.1004 = -0.0504.
    gamma_to_beta = pair(report, "gamma", "beta")
    assert gamma_to_beta.gross_profit > 0
    assert gamma_to_beta.net_profit == pytest.approx(-0.0504)
    assert gamma_to_beta not in report.opportunities


def test_the_best_gross_spread_is_not_the_best_trade_once_fees_are_paid():
    report = analyse(three_exchanges(), size=1, min_profit_bps=0, now=NOW)

    by_gross = max(report.all_pairs, key=lambda p: p.gross_profit)
    assert (by_gross.buy_on, by_gross.sell_on) == ("alpha", "beta")
    assert (report.best.buy_on, report.best.sell_on) == ("alpha", "gamma")


def test_min_profit_keeps_only_the_pairs_that_clear_it():
    report = analyse(three_exchanges(), size=1, min_profit_bps=19.98, now=NOW)

    # alpha -> gamma earns 20.00 bps, alpha -> beta 19.96 bps
    assert [(o.buy_on, o.sell_on) for o in report.opportunities] == [("alpha", "gamma")]
    assert len(report.all_pairs) == 6


def test_a_negative_threshold_admits_losing_pairs():
    report = analyse(three_exchanges(), size=1, min_profit_bps=-30, now=NOW)

    assert [(o.buy_on, o.sell_on) for o in report.opportunities] == [
        ("alpha", "gamma"),
        ("alpha", "beta"),
        ("gamma", "beta"),
        ("beta", "gamma"),
    ]


def test_equal_returns_are_ordered_by_the_larger_profit():
    # Fee-free, size 1. Symbol A: buy 100 sell 100.5: 0.5 profit, 0.5 / 100 = 50 bps.
    # Symbol B: buy 200 sell 201: 1.0 profit, 1.0 / 200 = 50 bps as well, but twice the money.
    views = [
        view("alpha", symbol="AAA-USD", bid=99.0, ask=100.0, fee=0.0),
        view("beta", symbol="AAA-USD", bid=100.5, ask=101.0, fee=0.0),
        view("alpha", symbol="BBB-USD", bid=198.0, ask=200.0, fee=0.0),
        view("beta", symbol="BBB-USD", bid=201.0, ask=202.0, fee=0.0),
    ]

    report = analyse(views, size=1, min_profit_bps=10, now=NOW)

    assert [(o.symbol, o.net_bps, o.net_profit) for o in report.opportunities] == [
        ("BBB-USD", 50.0, 1.0),
        ("AAA-USD", 50.0, 0.5),
    ]


def test_pairs_only_form_within_a_symbol():
    views = [
        view("alpha", symbol="BTC-USD", bid=100.0, ask=100.1),
        view("beta", symbol="ETH-USD", bid=200.0, ask=200.1),
    ]

    report = analyse(views, size=1, min_profit_bps=0, now=NOW)

    assert report.pairs_evaluated == 0
    assert report.all_pairs == [] and report.opportunities == []


# -- analyse: what is left out ----------------------------------------------------------------


def test_a_pair_without_enough_depth_is_skipped_with_its_reason():
    thin = view("thin", bid=100.5, ask=100.6, size=0.4)
    deep = view("deep", bid=100.0, ask=100.1, size=5.0)

    report = analyse([deep, thin], size=1, min_profit_bps=0, now=NOW)

    assert report.pairs_evaluated == 2
    assert report.all_pairs == []
    assert sorted((s.buy_on, s.sell_on, s.reason) for s in report.skipped) == [
        ("deep", "thin", "not enough depth to sell 1 on thin: its bids hold 0.4"),
        ("thin", "deep", "not enough depth to buy 1 on thin: its asks hold 0.4"),
    ]


def test_both_thin_sides_are_named():
    report = analyse(
        [view("a", bid=100, ask=101, size=0.5), view("b", bid=100, ask=101, size=0.2)],
        size=1,
        min_profit_bps=0,
        now=NOW,
    )

    assert report.skipped[0].reason == (
        "not enough depth to buy 1 on a: its asks hold 0.5; not enough depth to sell 1 on b: its bids hold 0.2"
    )


def test_stale_and_future_quotes_are_excluded():
    views = [
        view("alpha", bid=99.90, ask=100.00, age=12.3),
        view("beta", bid=100.40, ask=100.50, age=-6.0),  # six seconds in the future
        view("gamma", bid=100.30, ask=100.35, age=-4.0),  # within the 5 s clock tolerance
        view("delta", bid=100.30, ask=100.35, age=10.0),  # exactly at the limit: still fresh
    ]

    report = analyse(views, size=1, min_profit_bps=0, now=NOW)

    assert [(e.server, e.reason) for e in report.excluded] == [
        ("alpha", "stale: 12.3 s old, limit 10 s"),
        ("beta", "from the future: 6.0 s ahead, tolerance 5 s"),
    ]
    assert [v.server for v in report.views] == ["gamma", "delta"]
    assert {(p.buy_on, p.sell_on) for p in report.all_pairs} == {("gamma", "delta"), ("delta", "gamma")}


def test_max_age_is_a_parameter():
    report = analyse([view("alpha", bid=99, ask=100, age=3.0)], size=1, min_profit_bps=0, max_age_seconds=2.5, now=NOW)

    assert report.excluded[0].reason == "stale: 3.0 s old, limit 2.5 s"


# -- bad inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"size": 0}, "size"),
        ({"size": -1}, "size"),
        ({"size": math.nan}, "size"),
        ({"min_profit_bps": math.inf}, "min_profit_bps"),
        ({"min_profit_bps": math.nan}, "min_profit_bps"),
        ({"slippage_bps": -0.5}, "slippage_bps"),
        ({"max_age_seconds": -1}, "max_age_seconds"),
        ({"now": datetime(2026, 7, 28, 12, 0, 0)}, "now"),  # naive: whose noon?
    ],
)
def test_analyse_refuses_bad_parameters_by_name(kwargs, parameter):
    arguments = {"size": 1.0, "min_profit_bps": 5.0, "slippage_bps": 0.0, "now": NOW} | kwargs

    with pytest.raises(ValueError, match=parameter):
        analyse(three_exchanges(), **arguments)


def test_two_views_of_one_symbol_from_one_server_are_refused():
    with pytest.raises(ValueError, match="more than one view of BTC-USD from server 'alpha'"):
        analyse([view("alpha", bid=1, ask=2), view("alpha", bid=1, ask=2)], size=1, min_profit_bps=0, now=NOW)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bid": 101.0, "ask": 100.0}, "crossed quote"),
        ({"bid": 0.0}, "prices must be positive"),
        ({"ask": -3.0}, "prices must be positive"),
        ({"bid": "100"}, "bid must be a finite number"),
        ({"taker_fee": 1.5}, "taker_fee"),
        ({"ask_size": -1.0}, "sizes must not be negative"),
        ({"quoted_at": datetime(2026, 7, 28, 12, 0)}, "timezone-aware"),
        ({"asks": [(100.2, 1.0), (100.1, 1.0)]}, "asks are not best first"),
        ({"bids": [(99.0, 1.0), (99.5, 1.0)]}, "bids are not best first"),
        ({"bids": [(99.0, -1.0)]}, r"bids\[0\] needs a positive price"),
    ],
)
def test_a_market_view_refuses_impossible_markets(changes, message):
    fields = {
        "server": "alpha",
        "exchange": "alpha",
        "symbol": "BTC-USD",
        "bid": 99.0,
        "ask": 100.0,
        "bid_size": 1.0,
        "ask_size": 1.0,
        "taker_fee": 0.001,
        "quoted_at": NOW,
    } | changes

    with pytest.raises(ValueError, match=message):
        MarketView(**fields)


def test_an_empty_book_side_falls_back_to_the_quote_touch():
    market = view("alpha", bid=99.0, ask=100.0, size=2.5, bids=[(99.0, 4.0), (98.0, 1.0)])

    assert market.bids == [(99.0, 4.0), (98.0, 1.0)]
    assert market.asks == [(100.0, 2.5)]


# -- from_answers -----------------------------------------------------------------------------


def quote_answer(**changes) -> dict:
    """The structured content of exchange_fleet's get_quote (a Quote model dumped to JSON)."""
    return {
        "symbol": "BTC-USD",
        "exchange": "alpha",
        "bid": 64990.5,
        "ask": 65010.25,
        "last": 65001.0,
        "size": 0.031,
        "mid": 65000.375,
        "timestamp": "2026-07-28T11:59:58.000Z",
        "taker_fee": 0.001,
        "tick": 1785239998,
        "bid_size": 0.42,
        "ask_size": 0.37,
    } | changes


def book_answer(**changes) -> dict:
    """The structured content of exchange_fleet's get_order_book(symbol, depth=3)."""
    return {
        "symbol": "BTC-USD",
        "exchange": "alpha",
        "bids": [[64990.5, 0.42], [64985.0, 1.1], [64970.75, 2.0]],
        "asks": [[65010.25, 0.37], [65015.0, 0.9], [65030.5, 2.5]],
        "depth": 3,
        "timestamp": "2026-07-28T11:59:58.000Z",
        "tick": 1785239998,
    } | changes


def test_from_answers_reads_the_quote_and_the_book():
    market = MarketView.from_answers("alpha-local", quote_answer(), book_answer())

    assert (market.server, market.exchange, market.symbol) == ("alpha-local", "alpha", "BTC-USD")
    assert (market.bid, market.ask, market.bid_size, market.ask_size) == (64990.5, 65010.25, 0.42, 0.37)
    assert market.taker_fee == 0.001
    assert market.quoted_at == datetime(2026, 7, 28, 11, 59, 58, tzinfo=UTC)
    assert market.bids == [(64990.5, 0.42), (64985.0, 1.1), (64970.75, 2.0)]
    assert market.asks[-1] == (65030.5, 2.5)


def test_from_answers_without_a_book_trades_at_the_touch():
    market = MarketView.from_answers("alpha", quote_answer(), None)

    assert market.bids == [(64990.5, 0.42)]
    assert market.asks == [(65010.25, 0.37)]


def test_from_answers_reads_an_empty_answer_as_no_book():
    market = MarketView.from_answers("alpha", quote_answer(), {})

    assert (market.bids, market.asks) == ([(64990.5, 0.42)], [(65010.25, 0.37)])


def test_from_answers_with_an_empty_book_trades_at_the_touch():
    market = MarketView.from_answers("alpha", quote_answer(), book_answer(bids=[], asks=[]))

    assert market.asks == [(65010.25, 0.37)]


def test_from_answers_dates_the_view_by_the_older_of_quote_and_book():
    market = MarketView.from_answers("alpha", quote_answer(), book_answer(timestamp="2026-07-28T11:59:50Z"))

    assert market.quoted_at == datetime(2026, 7, 28, 11, 59, 50, tzinfo=UTC)


def test_from_answers_reads_a_timestamp_without_offset_as_utc():
    market = MarketView.from_answers("alpha", quote_answer(timestamp="2026-07-28T11:59:58"), None)

    assert market.quoted_at == datetime(2026, 7, 28, 11, 59, 58, tzinfo=UTC)


@pytest.mark.parametrize(
    ("quote", "book", "message"),
    [
        (quote_answer(bid=None), None, r"alpha: quote\.bid must be a finite number, got None"),
        (quote_answer(ask="65010.25"), None, r"quote\.ask must be a finite number"),
        (quote_answer(taker_fee=True), None, r"quote\.taker_fee must be a finite number"),
        ({k: v for k, v in quote_answer().items() if k != "ask_size"}, None, r"quote\.ask_size is missing"),
        (quote_answer(symbol=""), None, r"quote\.symbol must be a non-empty string"),
        (quote_answer(bid=-1.0), None, "prices must be positive"),
        (quote_answer(bid=65020.0), None, "crossed quote, bid 65020.0 > ask 65010.25"),
        (quote_answer(timestamp="yesterday"), None, r"quote\.timestamp is not an ISO 8601 time: 'yesterday'"),
        (quote_answer(timestamp=1785239998), None, r"quote\.timestamp must be an ISO 8601 string"),
        (quote_answer(), book_answer(symbol="ETH-USD"), "the order book is for 'ETH-USD'"),
        (quote_answer(), book_answer(bids=[[64990.5]]), r"book\.bids\[0\] must be \[price, size\] numbers"),
        (quote_answer(), book_answer(asks=[["a", 1]]), r"book\.asks\[0\] must be \[price, size\] numbers"),
        (quote_answer(), book_answer(asks=None), r"book\.asks must be a list"),
        (quote_answer(), book_answer(timestamp="noon"), r"book\.timestamp is not an ISO 8601 time"),
        ("not a quote", None, "the quote must be an object"),
    ],
)
def test_from_answers_refuses_malformed_answers_clearly(quote, book, message):
    with pytest.raises(ValueError, match=message):
        MarketView.from_answers("alpha", quote, book)


def test_from_answers_feeds_analyse_end_to_end():
    alpha = MarketView.from_answers("alpha", quote_answer(), book_answer())
    beta_quote = quote_answer(exchange="beta", bid=65400.0, ask=65420.0, bid_size=0.5, ask_size=0.5)
    beta = MarketView.from_answers("beta", beta_quote, None)

    report = analyse([alpha, beta], size=0.5, min_profit_bps=0, now=NOW)

    # Buy 0.5 on alpha: 0.37 @ 65010.25 + 0.13 @ 65015.0 = 24053.7925 + 8451.95 = 32505.7425
    # Sell 0.5 on beta: 0.5 @ 65400 = 32700; fees 32.5057425 + 32.7; net 194.2575 - 65.2057425 = 129.0517575
    best = report.best
    assert (best.buy_on, best.sell_on, best.buy_levels) == ("alpha", "beta", 2)
    assert best.gross_profit == pytest.approx(194.2575)
    assert best.net_profit == pytest.approx(129.0517575)


# -- to_json ----------------------------------------------------------------------------------


def test_the_report_is_json_ready_with_sensible_rounding():
    report = analyse(three_exchanges(), size=1, min_profit_bps=0, now=NOW)

    data = report.to_json()

    assert json.loads(json.dumps(data)) == data
    assert data["evaluated_at"] == "2026-07-28T12:00:00+00:00"
    assert data["pairs_evaluated"] == 6
    assert data["views"][0]["quoted_at"] == "2026-07-28T11:59:59+00:00"
    assert data["views"][0]["asks"] == [[100.0, 5.0]]
    best = data["opportunities"][0]
    assert best == {
        "symbol": "BTC-USD",
        "buy_on": "alpha",
        "sell_on": "gamma",
        "buy_price": 100.0,
        "sell_price": 100.3,
        "buy_fee": 0.1,
        "sell_fee": 0.0,
        "fees": 0.1,
        "net_profit": 0.2,  # 0.30000000000000004 - 0.1 in floats, rounded to 8 decimals
        "net_bps": 20.0,
        "size": 1.0,
        "gross_profit": 0.3,
        "slippage": 0.0,
        "buy_levels": 1,
        "sell_levels": 1,
    }
    assert data["all_pairs"][-1]["net_bps"] == -79.6418


def test_the_report_columns_add_up_gross_less_fees_less_slippage_is_net():
    # With a slippage allowance every column matters: the fees are both taker fees, the slippage its own column.
    report = analyse(three_exchanges(), size=1, min_profit_bps=-10_000, slippage_bps=5, now=NOW)
    rows = report.to_json()["all_pairs"]
    assert len(rows) == 6
    for row in rows:
        assert row["slippage"] > 0
        assert row["fees"] == pytest.approx(row["buy_fee"] + row["sell_fee"], abs=1e-8)
        assert row["gross_profit"] - row["fees"] - row["slippage"] == pytest.approx(row["net_profit"], abs=1e-7)
    best = report.to_json()["opportunities"][0]
    # alpha -> gamma, 1 unit: gross 100.3 - 100 = 0.3; fees 0.1 + 0; slippage (100 + 100.3) * 5 bps = 0.10015
    assert (best["gross_profit"], best["fees"], best["slippage"]) == (0.3, 0.1, pytest.approx(0.10015))
    assert best["net_profit"] == pytest.approx(0.09985)
