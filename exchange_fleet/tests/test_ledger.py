"""Ledger: two-phase reserve/confirm/cancel, overspend refusal, idempotency, expiry, the ledger file."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from exchange_fleet.ledger import (
    IdempotencyConflictError,
    InsufficientFundsError,
    Ledger,
    LedgerError,
    ReservationStateError,
    UnknownReservationError,
)
from exchange_fleet.ledger_file import LedgerFile


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(clock: FakeClock) -> Ledger:
    return Ledger({"USD": 10_000, "BTC": 1}, taker_fee=0.001, reservation_ttl_s=30, clock=clock, id_prefix="t")


def test_buy_reserves_quote_with_fee_and_confirm_moves_balances(ledger: Ledger) -> None:
    r = ledger.reserve_order("BTC-USD", "buy", 0.1, 50_000)
    assert r.reserved_asset == "USD"
    assert r.reserved_amount == Decimal("5005.000")  # 5000 notional + 0.1% fee
    assert ledger.available("USD") == Decimal("4995")
    fill = ledger.confirm_order(r.reservation_id)
    assert (fill.notional, fill.fee, fill.fee_asset) == (Decimal("5000.0"), Decimal("5.0000"), "USD")
    balances = ledger.get_balances()
    assert balances["USD"].total == Decimal("4995") and balances["USD"].reserved == 0
    assert balances["BTC"].total == Decimal("1.1")


def test_sell_reserves_base_and_pays_fee_from_proceeds(ledger: Ledger) -> None:
    r = ledger.reserve_order("BTC-USD", "sell", "0.5", "40000")
    assert (r.reserved_asset, r.reserved_amount) == ("BTC", Decimal("0.5"))
    assert ledger.available("BTC") == Decimal("0.5")
    ledger.confirm_order(r.reservation_id)
    balances = ledger.get_balances()
    assert balances["BTC"].total == Decimal("0.5")
    assert balances["USD"].total == Decimal("10000") + Decimal("20000") - Decimal("20")


def test_overspend_is_refused_counting_open_reservations(ledger: Ledger) -> None:
    ledger.reserve_order("BTC-USD", "buy", 0.15, 50_000)  # holds 7507.5 USD
    with pytest.raises(InsufficientFundsError, match="insufficient USD.*only 2492.5"):
        ledger.reserve_order("BTC-USD", "buy", 0.1, 50_000)
    with pytest.raises(InsufficientFundsError, match="insufficient BTC"):
        ledger.reserve_order("BTC-USD", "sell", 1.01, 50_000)
    with pytest.raises(InsufficientFundsError, match="insufficient ETH"):
        ledger.reserve_order("ETH-USD", "sell", 1, 3_000)


def test_confirm_is_idempotent_and_executes_once(ledger: Ledger) -> None:
    r = ledger.reserve_order("BTC-USD", "buy", 0.1, 50_000)
    first = ledger.confirm_order(r.reservation_id)
    again = ledger.confirm_order(r.reservation_id)
    assert again == first
    assert ledger.get_balances()["BTC"].total == Decimal("1.1")  # not 1.2


def test_cancel_releases_and_is_idempotent(ledger: Ledger) -> None:
    r = ledger.reserve_order("BTC-USD", "buy", 0.1, 50_000)
    assert ledger.cancel_order(r.reservation_id).status == "cancelled"
    assert ledger.available("USD") == Decimal("10000")
    assert ledger.cancel_order(r.reservation_id).status == "cancelled"  # no-op success
    assert ledger.available("USD") == Decimal("10000")


def test_contradictory_transitions_are_refused(ledger: Ledger) -> None:
    cancelled = ledger.reserve_order("BTC-USD", "buy", 0.01, 50_000)
    ledger.cancel_order(cancelled.reservation_id)
    with pytest.raises(ReservationStateError, match="was cancelled; it cannot be confirmed"):
        ledger.confirm_order(cancelled.reservation_id)
    confirmed = ledger.reserve_order("BTC-USD", "buy", 0.01, 50_000)
    ledger.confirm_order(confirmed.reservation_id)
    with pytest.raises(ReservationStateError, match="already confirmed"):
        ledger.cancel_order(confirmed.reservation_id)
    with pytest.raises(UnknownReservationError, match="unknown reservation id 'nope'"):
        ledger.confirm_order("nope")
    with pytest.raises(UnknownReservationError):
        ledger.cancel_order("nope")


def test_reservations_expire_and_release_funds(ledger: Ledger, clock: FakeClock) -> None:
    r = ledger.reserve_order("BTC-USD", "buy", 0.1, 50_000)
    clock.now += 29.9
    assert ledger.available("USD") == Decimal("4995")
    clock.now += 0.2
    assert ledger.available("USD") == Decimal("10000")
    assert ledger.get_reservation(r.reservation_id).status == "expired"
    with pytest.raises(ReservationStateError, match="expired"):
        ledger.confirm_order(r.reservation_id)
    # A coordinator's compensating cancel still succeeds, and says what happened.
    assert ledger.cancel_order(r.reservation_id).status == "expired"


def test_custom_ttl_and_ids_carry_prefix(ledger: Ledger, clock: FakeClock) -> None:
    r = ledger.reserve_order("BTC-USD", "sell", 0.1, 50_000, ttl_s=1)
    assert r.reservation_id.startswith("t-")
    clock.now += 1
    assert ledger.expire_due() == [r.reservation_id]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("BTC-USD", "hold", 1, 1), "side must be 'buy' or 'sell'"),
        (("BTC-USD", "buy", 0, 1), "quantity must be > 0"),
        (("BTC-USD", "buy", 1, -5), "limit_price must be > 0"),
        (("BTC-USD", "buy", "abc", 1), "quantity must be a number"),
        (("BTCUSD", "buy", 1, 1), "BASE-QUOTE"),
    ],
)
def test_bad_arguments(ledger: Ledger, args: tuple[object, ...], message: str) -> None:
    with pytest.raises(LedgerError, match=message):
        ledger.reserve_order(*args)  # type: ignore[arg-type]


def test_history_is_bounded_but_open_reservations_are_kept(clock: FakeClock) -> None:
    ledger = Ledger({"USD": 1_000_000}, taker_fee=0, clock=clock, max_history=5)
    open_one = ledger.reserve_order("BTC-USD", "buy", 0.001, 100)
    for _ in range(10):
        ledger.cancel_order(ledger.reserve_order("BTC-USD", "buy", 0.001, 100).reservation_id)
    assert ledger.get_reservation(open_one.reservation_id).status == "reserved"
    assert len(ledger.open_reservations()) == 1


# -- idempotency keys and recovery look-ups ---------------------------------------------


def test_a_retried_reserve_with_the_same_key_returns_the_same_reservation(ledger: Ledger) -> None:
    first = ledger.reserve_order("BTC-USD", "buy", 0.1, 50_000, idempotency_key="k-1")
    # The retry arrives after the market moved: the original price and hold stand.
    again = ledger.reserve_order("BTC-USD", "buy", "0.10", 51_000, idempotency_key="k-1")
    assert again == first
    assert ledger.available("USD") == Decimal("4995")  # held once
    assert ledger.replay_reservation("k-1", symbol="BTC-USD", side="buy", quantity=0.1) == first
    assert ledger.replay_reservation("k-2", symbol="BTC-USD", side="buy", quantity=0.1) is None


def test_a_key_reused_for_a_different_order_is_refused_naming_the_difference(ledger: Ledger) -> None:
    ledger.reserve_order("BTC-USD", "buy", 0.1, 50_000, idempotency_key="k-1", requested_limit=50_100)
    conflicts = [
        ({"symbol": "ETH-USD", "side": "buy", "quantity": 0.1, "requested_limit": 50_100}, "symbol BTC-USD"),
        ({"symbol": "BTC-USD", "side": "sell", "quantity": 0.1, "requested_limit": 50_100}, "side buy"),
        ({"symbol": "BTC-USD", "side": "buy", "quantity": 0.2, "requested_limit": 50_100}, r"quantity 0.1 \(now 0.2\)"),
        ({"symbol": "BTC-USD", "side": "buy", "quantity": 0.1}, r"limit_price 50100 \(now None\)"),
    ]
    for order, difference in conflicts:
        with pytest.raises(IdempotencyConflictError, match=f"already used for reservation t-.*{difference}"):
            ledger.replay_reservation("k-1", **order)  # type: ignore[arg-type]
    with pytest.raises(IdempotencyConflictError):
        ledger.reserve_order("BTC-USD", "sell", 0.1, 50_000, idempotency_key="k-1")
    assert len(ledger.open_reservations()) == 1


def test_a_key_keeps_answering_after_the_reservation_finished(ledger: Ledger, clock: FakeClock) -> None:
    r = ledger.reserve_order("BTC-USD", "buy", 0.1, 50_000, idempotency_key="k-1")
    clock.now += 31
    # Expired: the retry reports that instead of quietly reserving again under the same key.
    assert ledger.reserve_order("BTC-USD", "buy", 0.1, 50_000, idempotency_key="k-1").status == "expired"
    assert ledger.get_reservation_by_key("k-1").reservation_id == r.reservation_id
    with pytest.raises(UnknownReservationError, match="no reservation with idempotency key 'k-9'"):
        ledger.get_reservation_by_key("k-9")


def test_pruned_history_forgets_old_keys_too(clock: FakeClock) -> None:
    ledger = Ledger({"USD": 1_000_000}, taker_fee=0, clock=clock, max_history=3)
    for i in range(5):
        ledger.cancel_order(ledger.reserve_order("BTC-USD", "buy", 0.001, 100, idempotency_key=f"k{i}").reservation_id)
    assert ledger.find_by_key("k0") is None and ledger.find_by_key("k1") is None
    assert ledger.find_by_key("k4") is not None


# -- the ledger file ----------------------------------------------------------------------


def test_a_ledger_resumes_from_its_file_with_balances_reservations_and_keys(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "ledger.json"
    first = Ledger({"USD": 10_000, "BTC": 1}, taker_fee=0.001, clock=clock, store=LedgerFile(path))
    assert path.exists()  # written at once, so a bad path fails at start
    confirmed = first.reserve_order("BTC-USD", "buy", 0.1, 50_000, idempotency_key="k-confirmed")
    fill = first.confirm_order(confirmed.reservation_id)
    still_open = first.reserve_order("BTC-USD", "sell", 0.25, 50_000, idempotency_key="k-open", book_levels=3)
    cancelled = first.reserve_order("BTC-USD", "buy", 0.01, 50_000)
    first.cancel_order(cancelled.reservation_id)

    # The starting balances given to the second ledger are ignored: the file wins.
    second = Ledger({"USD": 1}, taker_fee=0.001, clock=clock, store=LedgerFile(path))
    assert second.get_balances() == first.get_balances()
    assert second.get_balances()["BTC"].reserved == Decimal("0.25")
    assert second.confirm_order(confirmed.reservation_id) == fill  # still idempotent across the restart
    assert second.get_reservation(still_open.reservation_id) == still_open
    assert second.get_reservation_by_key("k-open").book_levels == 3
    assert second.get_reservation(cancelled.reservation_id).status == "cancelled"
    # The open reservation still expires on time, and releases what it held.
    clock.now += 31
    assert second.expire_due() == [still_open.reservation_id]
    assert second.available("BTC") == Decimal("1.1")
    third = Ledger({}, taker_fee=0.001, clock=clock, store=LedgerFile(path))
    assert third.get_reservation(still_open.reservation_id).status == "expired"


def test_the_file_is_replaced_atomically_and_leaves_no_temporary_files(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "nested" / "ledger.json"
    ledger = Ledger({"USD": 10_000}, taker_fee=0, clock=clock, store=LedgerFile(path))
    for _ in range(5):
        ledger.reserve_order("BTC-USD", "buy", 0.001, 100)
    assert [p.name for p in path.parent.iterdir()] == ["ledger.json"]
    state = json.loads(path.read_text())
    assert state["version"] == 1 and len(state["reservations"]) == 5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"version": 99, "balances": {}, "reservations": []}', "format version 99"),
        ('{"version": 1, "balances": {"USD": "lots"}, "reservations": []}', "not a valid ledger state"),
        ('{"version": 1, "balances": {}}', "not a valid ledger state"),
        ('{"version": 1, "balances": [], "reservations": []}', "not a valid ledger state"),
        ('{"version": 1, "balances": {}, "reservations": [{"status": "lost"}]}', "not a valid ledger state"),
    ],
)
def test_a_damaged_file_stops_the_start_instead_of_resetting_balances(
    tmp_path: Path, clock: FakeClock, content: str, message: str
) -> None:
    path = tmp_path / "ledger.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        Ledger({"USD": 10_000}, taker_fee=0, clock=clock, store=LedgerFile(path))
    assert path.read_text() == content  # left alone for a human to look at
