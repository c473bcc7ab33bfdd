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
  dies between the phases cannot lock an exchange's balances forever;
- a reserve may carry the caller's idempotency key: retrying it returns the original
  reservation instead of reserving twice, and a coordinator recovering after a crash
  can look a reservation up by id or by key (`get_reservation`, `find_by_key`) for as
  long as the bounded history keeps it;
- with a `LedgerFile`, every state change is written to disk atomically and loaded
  again at start, so balances and reservations survive a restart of the exchange.

Amounts are `Decimal` internally so balances add up exactly; callers may pass floats,
which are converted through `str()` to avoid binary artefacts (0.1 -> "0.1").
Synchronous and single-threaded by design: on the server's event loop each method
runs without interruption, which is what makes check-then-update atomic.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from exchange_fleet.ledger_file import LEDGER_FILE_VERSION, LedgerFile
from exchange_fleet.profiles import split_symbol

logger = logging.getLogger(__name__)

Side = Literal["buy", "sell"]
ReservationStatus = Literal["reserved", "confirmed", "cancelled", "expired"]

Amount = Decimal | float | int | str

DEFAULT_RESERVATION_TTL_S = 30.0
# Terminal reservations are remembered for idempotent retries and for recovery look-ups
# (a coordinator asking minutes later what became of one); cap the memory a long
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


class IdempotencyConflictError(LedgerError):
    """An idempotency key was reused for a different order."""


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
    idempotency_key: str | None = None
    """The caller's key for retrying this reserve safely, if it gave one."""
    requested_limit: Decimal | None = None
    """The caller's worst acceptable price, if any (part of what a retried key must match)."""
    book_levels: int = 1
    """How many order-book levels the price was averaged over (1 = filled at the touch)."""


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
        store: LedgerFile | None = None,
    ) -> None:
        """`store`: when given and its file exists, the ledger resumes from it (the file's balances win over
        `balances`); every later state change is written back to it."""
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
        self._by_key: dict[str, str] = {}
        self._store = store
        if store is not None:
            state = store.load()
            if state is None:
                # Written at once so an unwritable path fails at start, not silently at the first trade.
                store.save(self.to_state())
            else:
                self._restore(state, source=str(store.path))

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

    def find_by_key(self, idempotency_key: str) -> Reservation | None:
        """The reservation made with this idempotency key, if the history still holds it."""
        self.expire_due()
        reservation_id = self._by_key.get(idempotency_key)
        return None if reservation_id is None else self._reservations[reservation_id]

    def get_reservation_by_key(self, idempotency_key: str) -> Reservation:
        reservation = self.find_by_key(idempotency_key)
        if reservation is None:
            raise UnknownReservationError(f"no reservation with idempotency key {idempotency_key!r}")
        return reservation

    def replay_reservation(
        self,
        idempotency_key: str,
        *,
        symbol: str,
        side: Side,
        quantity: Amount,
        requested_limit: Amount | None = None,
    ) -> Reservation | None:
        """The earlier reservation made with this key for the same order, or None if the key is new.

        Call it before pricing a retried reserve: the original answer stands even if the market has moved
        since (or its limit would no longer be marketable). Raises IdempotencyConflictError when the key was
        used for a different order, and says what differs.
        """
        existing = self.find_by_key(idempotency_key)
        if existing is None:
            return None
        wanted: dict[str, object] = {
            "symbol": symbol,
            "side": side,
            "quantity": to_decimal(quantity, "quantity"),
            "limit_price": None if requested_limit is None else to_decimal(requested_limit, "limit_price"),
        }
        held: dict[str, object] = {
            "symbol": existing.symbol,
            "side": existing.side,
            "quantity": existing.quantity,
            "limit_price": existing.requested_limit,
        }
        differences = [f"{name} {held[name]} (now {wanted[name]})" for name in wanted if wanted[name] != held[name]]
        if differences:
            raise IdempotencyConflictError(
                f"idempotency key {idempotency_key!r} was already used for reservation {existing.reservation_id}"
                f" with a different order: {', '.join(differences)}; use a new key for a new order"
            )
        return existing

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
        idempotency_key: str | None = None,
        requested_limit: Amount | None = None,
        book_levels: int = 1,
    ) -> Reservation:
        """Hold the funds for an order that will execute at `limit_price` on confirm.

        A buy holds quantity * price * (1 + taker_fee) of the quote currency; a sell
        holds `quantity` of the base asset. Raises InsufficientFundsError when the
        available balance (balance minus what other reservations hold) is short.
        With an `idempotency_key` already known, returns that reservation instead
        (see `replay_reservation`, which callers should ask first).
        """
        self.expire_due()
        if idempotency_key is not None:
            if not idempotency_key:
                raise LedgerError("idempotency_key must not be empty")
            replayed = self.replay_reservation(
                idempotency_key, symbol=symbol, side=side, quantity=quantity, requested_limit=requested_limit
            )
            if replayed is not None:
                return replayed
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
        requested = None if requested_limit is None else to_decimal(requested_limit, "requested_limit")
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
            idempotency_key=idempotency_key,
            requested_limit=requested,
            book_levels=book_levels,
        )
        self._reserved[asset] = self._reserved.get(asset, Decimal(0)) + amount
        self._reservations[reservation.reservation_id] = reservation
        if idempotency_key is not None:
            self._by_key[idempotency_key] = reservation.reservation_id
        self._prune_history()
        self._changed()
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
        self._changed()
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
        self._changed()
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
        if expired:
            self._changed()
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
            dropped = self._reservations.pop(rid)
            if dropped.idempotency_key is not None:
                self._by_key.pop(dropped.idempotency_key, None)

    # -- persistence -----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume: balances and the reservation history (open ones included), as JSON
        types. What open reservations hold is not stored: it is recomputed from them on load."""
        return {
            "version": LEDGER_FILE_VERSION,
            "balances": {asset: str(amount) for asset, amount in self._balances.items()},
            "reservations": [_reservation_to_json(r) for r in self._reservations.values()],
        }

    def _restore(self, state: Mapping[str, Any], *, source: str) -> None:
        try:
            balances = {str(asset): Decimal(amount) for asset, amount in state["balances"].items()}
            reservations = [_reservation_from_json(item) for item in state["reservations"]]
        except (KeyError, TypeError, AttributeError, ValueError, ArithmeticError) as exc:
            raise LedgerError(f"ledger file {source} is not a valid ledger state: {exc!r}") from None
        self._balances = balances
        self._reservations = OrderedDict((r.reservation_id, r) for r in reservations)
        self._by_key = {r.idempotency_key: r.reservation_id for r in reservations if r.idempotency_key is not None}
        self._reserved = {}
        for reservation in reservations:
            if reservation.status == "reserved":
                asset = reservation.reserved_asset
                self._reserved[asset] = self._reserved.get(asset, Decimal(0)) + reservation.reserved_amount
        logger.info(
            "ledger resumed from %s: %d reservation(s), %d open",
            source,
            len(reservations),
            sum(1 for r in reservations if r.status == "reserved"),
        )

    def _changed(self) -> None:
        if self._store is None:
            return
        try:
            self._store.save(self.to_state())
        except OSError:
            # The in-memory ledger stays authoritative while the process runs, and the next change
            # writes the whole state again; failing the trade would misreport what happened.
            logger.exception(
                "could not write the ledger file %s; balances will not survive a restart", self._store.path
            )


def _reservation_to_json(reservation: Reservation) -> dict[str, Any]:
    fill = reservation.fill
    return {
        "reservation_id": reservation.reservation_id,
        "symbol": reservation.symbol,
        "side": reservation.side,
        "quantity": str(reservation.quantity),
        "price": str(reservation.price),
        "fee_rate": str(reservation.fee_rate),
        "fee": str(reservation.fee),
        "reserved_asset": reservation.reserved_asset,
        "reserved_amount": str(reservation.reserved_amount),
        "created_at": reservation.created_at,
        "expires_at": reservation.expires_at,
        "status": reservation.status,
        "idempotency_key": reservation.idempotency_key,
        "requested_limit": None if reservation.requested_limit is None else str(reservation.requested_limit),
        "book_levels": reservation.book_levels,
        "fill": None
        if fill is None
        else {
            "quantity": str(fill.quantity),
            "price": str(fill.price),
            "notional": str(fill.notional),
            "fee": str(fill.fee),
            "fee_asset": fill.fee_asset,
            "executed_at": fill.executed_at,
        },
    }


def _reservation_from_json(data: Mapping[str, Any]) -> Reservation:
    status = data["status"]
    side = data["side"]
    if status not in ("reserved", "confirmed", "cancelled", "expired") or side not in ("buy", "sell"):
        raise ValueError(f"reservation {data.get('reservation_id')!r} has status {status!r} and side {side!r}")
    raw_fill = data.get("fill")
    fill = None
    if raw_fill is not None:
        fill = Fill(
            reservation_id=data["reservation_id"],
            symbol=data["symbol"],
            side=side,
            quantity=Decimal(raw_fill["quantity"]),
            price=Decimal(raw_fill["price"]),
            notional=Decimal(raw_fill["notional"]),
            fee=Decimal(raw_fill["fee"]),
            fee_asset=raw_fill["fee_asset"],
            executed_at=float(raw_fill["executed_at"]),
        )
    if (status == "confirmed") != (fill is not None):
        raise ValueError(f"reservation {data['reservation_id']!r} is {status} but its fill is {raw_fill!r}")
    limit = data.get("requested_limit")
    return Reservation(
        reservation_id=data["reservation_id"],
        symbol=data["symbol"],
        side=side,
        quantity=Decimal(data["quantity"]),
        price=Decimal(data["price"]),
        fee_rate=Decimal(data["fee_rate"]),
        fee=Decimal(data["fee"]),
        reserved_asset=data["reserved_asset"],
        reserved_amount=Decimal(data["reserved_amount"]),
        created_at=float(data["created_at"]),
        expires_at=float(data["expires_at"]),
        status=status,
        fill=fill,
        idempotency_key=data.get("idempotency_key"),
        requested_limit=None if limit is None else Decimal(limit),
        book_levels=int(data.get("book_levels", 1)),
    )
