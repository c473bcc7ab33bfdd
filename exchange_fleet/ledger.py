"""Balances and two-phase orders: the exchange's side of a distributed transaction.

An orchestrator's coordinator buys on one exchange and sells on another atomically by
first reserving on both (phase one), then confirming both or cancelling both (phase
two). The ledger makes that safe to drive over an unreliable transport:

- reserving locks funds (buy: quote currency incl. taker fee; sell: the base asset) at
  a fixed price, so a later confirm cannot fail for lack of funds or move in price;
- confirm and cancel are idempotent where a retry is meaningful (a confirm retried
  after a lost reply returns the original fill; a repeated cancel is a no-op), and
  refuse the contradictory transitions (confirm after cancel, cancel after confirm);
- an unconfirmed reservation expires and releases its funds, so a coordinator that
  dies between the phases cannot lock an exchange's balances forever.

Amounts are `Decimal` internally so balances add up exactly; callers may pass floats,
which are converted through `str()` to avoid binary artefacts (0.1 -> "0.1").
Synchronous and single-threaded by design: on the server's event loop each method
runs without interruption, which is what makes check-then-update atomic.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from exchange_fleet.profiles import split_symbol

Side = Literal["buy", "sell"]
ReservationStatus = Literal["reserved", "confirmed", "cancelled", "expired"]

Amount = Decimal | float | int | str

DEFAULT_RESERVATION_TTL_S = 30.0
# Terminal reservations are remembered for idempotent retries; cap the memory a long
# benchmark can use. Only finished (confirmed/cancelled/expired) entries are dropped.
DEFAULT_MAX_HISTORY = 10_000


class LedgerError(ValueError):
    """Base class: every refusal from the ledger carries a message meant for the caller."""


class InsufficientFundsError(LedgerError):
    pass


class UnknownReservationError(LedgerError):
    pass


class ReservationStateError(LedgerError):
    """The reservation exists but is in a state that forbids the requested transition."""


def to_decimal(value: Amount, what: str = "amount") -> Decimal:
    if isinstance(value, bool):
        raise LedgerError(f"{what} must be a number, got {value!r}")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        raise LedgerError(f"{what} must be a number, got {value!r}") from None
    if not result.is_finite():
        raise LedgerError(f"{what} must be finite, got {value!r}")
    return result


@dataclass(frozen=True)
class AssetBalance:
    total: Decimal
    reserved: Decimal

    @property
    def available(self) -> Decimal:
        return self.total - self.reserved


@dataclass(frozen=True)
class Fill:
    """The outcome of a confirmed reservation; returned again on every repeat confirm."""

    reservation_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal
    fee_asset: str
    executed_at: float
    """Ledger clock time of execution."""


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    """The price the order is held at and will execute at on confirm."""
    fee_rate: Decimal
    fee: Decimal
    """Taker fee in the quote currency, charged on confirm."""
    reserved_asset: str
    reserved_amount: Decimal
    created_at: float
    expires_at: float
    """Ledger clock time after which an unconfirmed reservation is released."""
    status: ReservationStatus
    fill: Fill | None = None


class Ledger:
    """Per-asset balances plus the reservations holding parts of them."""

    def __init__(
        self,
        balances: Mapping[str, Amount],
        *,
        taker_fee: Amount,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        id_prefix: str = "rsv",
        max_history: int = DEFAULT_MAX_HISTORY,
    ) -> None:
        self._balances: dict[str, Decimal] = {}
        for asset, amount in balances.items():
            value = to_decimal(amount, f"balance of {asset}")
            if value < 0:
                raise LedgerError(f"starting balance of {asset} must be >= 0, got {value}")
            self._balances[asset] = value
        self._reserved: dict[str, Decimal] = {}
        self._fee_rate = to_decimal(taker_fee, "taker_fee")
        if not Decimal(0) <= self._fee_rate < Decimal(1):
            raise LedgerError(f"taker_fee must be in [0, 1), got {taker_fee}")
        if reservation_ttl_s <= 0:
            raise LedgerError(f"reservation_ttl_s must be > 0, got {reservation_ttl_s}")
        self._ttl_s = reservation_ttl_s
        self._clock = clock
        self._id_prefix = id_prefix
        self._max_history = max_history
        # Insertion-ordered so pruning drops the oldest finished reservations first.
        self._reservations: OrderedDict[str, Reservation] = OrderedDict()

    @property
    def taker_fee(self) -> Decimal:
        return self._fee_rate

    @property
    def reservation_ttl_s(self) -> float:
        return self._ttl_s

    # -- queries -------------------------------------------------------------------

    def get_balances(self) -> dict[str, AssetBalance]:
        self.expire_due()
        assets = sorted(set(self._balances) | set(self._reserved))
        return {
            asset: AssetBalance(
                total=self._balances.get(asset, Decimal(0)), reserved=self._reserved.get(asset, Decimal(0))
            )
            for asset in assets
        }

    def available(self, asset: str) -> Decimal:
        self.expire_due()
        return self._balances.get(asset, Decimal(0)) - self._reserved.get(asset, Decimal(0))

    def get_reservation(self, reservation_id: str) -> Reservation:
        self.expire_due()
        return self._lookup(reservation_id)

    def open_reservations(self) -> list[Reservation]:
        self.expire_due()
        return [r for r in self._reservations.values() if r.status == "reserved"]

    # -- phase one -----------------------------------------------------------------

    def reserve_order(
        self,
        symbol: str,
        side: Side,
        quantity: Amount,
        limit_price: Amount,
        *,
        ttl_s: float | None = None,
    ) -> Reservation:
        """Hold the funds for an order that will execute at `limit_price` on confirm.

        A buy holds quantity * price * (1 + taker_fee) of the quote currency; a sell
        holds `quantity` of the base asset. Raises InsufficientFundsError when the
        available balance (balance minus what other reservations hold) is short.
        """
        self.expire_due()
        try:
            base, quote = split_symbol(symbol)
        except ValueError as exc:
            raise LedgerError(str(exc)) from None
        if side not in ("buy", "sell"):
            raise LedgerError(f"side must be 'buy' or 'sell', got {side!r}")
        qty = to_decimal(quantity, "quantity")
        price = to_decimal(limit_price, "limit_price")
        if qty <= 0:
            raise LedgerError(f"quantity must be > 0, got {quantity}")
        if price <= 0:
            raise LedgerError(f"limit_price must be > 0, got {limit_price}")
        ttl = self._ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            raise LedgerError(f"ttl_s must be > 0, got {ttl_s}")

        notional = qty * price
        fee = notional * self._fee_rate
        if side == "buy":
            asset, amount = quote, notional + fee
        else:
            asset, amount = base, qty
        available = self._balances.get(asset, Decimal(0)) - self._reserved.get(asset, Decimal(0))
        if amount > available:
            raise InsufficientFundsError(
                f"insufficient {asset}: this {side} of {qty} {base} at {price} needs {amount} {asset}"
                f" but only {available} is available (balance minus open reservations)"
            )

        now = self._clock()
        reservation = Reservation(
            reservation_id=f"{self._id_prefix}-{uuid.uuid4().hex[:16]}",
            symbol=symbol,
            side=side,
            quantity=qty,
            price=price,
            fee_rate=self._fee_rate,
            fee=fee,
            reserved_asset=asset,
            reserved_amount=amount,
            created_at=now,
            expires_at=now + ttl,
            status="reserved",
        )
        self._reserved[asset] = self._reserved.get(asset, Decimal(0)) + amount
        self._reservations[reservation.reservation_id] = reservation
        self._prune_history()
        return reservation

    # -- phase two -----------------------------------------------------------------

    def confirm_order(self, reservation_id: str) -> Fill:
        """Execute a reservation exactly once; repeat confirms return the same Fill."""
        self.expire_due()
        reservation = self._lookup(reservation_id)
        if reservation.status == "confirmed":
            assert reservation.fill is not None
            return reservation.fill
        if reservation.status == "cancelled":
            raise ReservationStateError(f"reservation {reservation_id} was cancelled; it cannot be confirmed")
        if reservation.status == "expired":
            raise ReservationStateError(
                f"reservation {reservation_id} expired before it was confirmed; its funds were released - reserve again"
            )

        base, quote = split_symbol(reservation.symbol)
        self._release(reservation)
        notional = reservation.quantity * reservation.price
        if reservation.side == "buy":
            self._credit(quote, -(notional + reservation.fee))
            self._credit(base, reservation.quantity)
        else:
            self._credit(base, -reservation.quantity)
            self._credit(quote, notional - reservation.fee)
        fill = Fill(
            reservation_id=reservation_id,
            symbol=reservation.symbol,
            side=reservation.side,
            quantity=reservation.quantity,
            price=reservation.price,
            notional=notional,
            fee=reservation.fee,
            fee_asset=quote,
            executed_at=self._clock(),
        )
        self._reservations[reservation_id] = replace(reservation, status="confirmed", fill=fill)
        return fill

    def cancel_order(self, reservation_id: str) -> Reservation:
        """Release a reservation's funds.

        Cancelling an already cancelled (or already expired) reservation succeeds
        without effect, so a coordinator may retry its compensation blindly; the
        returned status says which. Cancelling a confirmed one is refused: the trade
        has happened.
        """
        self.expire_due()
        reservation = self._lookup(reservation_id)
        if reservation.status in ("cancelled", "expired"):
            return reservation
        if reservation.status == "confirmed":
            raise ReservationStateError(
                f"reservation {reservation_id} is already confirmed (executed); it cannot be cancelled"
            )
        self._release(reservation)
        cancelled = replace(reservation, status="cancelled")
        self._reservations[reservation_id] = cancelled
        return cancelled

    def expire_due(self) -> list[str]:
        """Release every open reservation past its expiry; returns their ids."""
        now = self._clock()
        expired: list[str] = []
        for rid, reservation in list(self._reservations.items()):
            if reservation.status == "reserved" and now >= reservation.expires_at:
                self._release(reservation)
                self._reservations[rid] = replace(reservation, status="expired")
                expired.append(rid)
        return expired

    # -- internals -----------------------------------------------------------------

    def _lookup(self, reservation_id: str) -> Reservation:
        try:
            return self._reservations[reservation_id]
        except KeyError:
            raise UnknownReservationError(f"unknown reservation id {reservation_id!r}") from None

    def _release(self, reservation: Reservation) -> None:
        asset = reservation.reserved_asset
        remaining = self._reserved.get(asset, Decimal(0)) - reservation.reserved_amount
        if remaining:
            self._reserved[asset] = remaining
        else:
            self._reserved.pop(asset, None)

    def _credit(self, asset: str, amount: Decimal) -> None:
        self._balances[asset] = self._balances.get(asset, Decimal(0)) + amount

    def _prune_history(self) -> None:
        excess = len(self._reservations) - self._max_history
        if excess <= 0:
            return
        for rid in [rid for rid, r in self._reservations.items() if r.status != "reserved"][:excess]:
            del self._reservations[rid]
