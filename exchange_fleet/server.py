"""One simulated exchange as a real MCP server (`MCPServer`, mcp SDK 2.3).

`build_exchange_server(profile)` returns a server with:

Tools (all return pydantic models, so each has an `output_schema` and its results
carry `structured_content`):
    get_quote(symbol) -> Quote                                 (top of book incl. bid_size/ask_size)
    get_order_book(symbol, depth=10) -> OrderBook              (1 <= depth <= 100)
    reserve_order(symbol, side, quantity, limit_price=None, idempotency_key=None) -> ReservationResult
    confirm_order(reservation_id) -> ConfirmResult             (idempotent)
    cancel_order(reservation_id) -> CancelResult               (idempotent)
    get_reservation(reservation_id=None, idempotency_key=None) -> ReservationResult
    get_balances() -> Balances
    get_exchange_info() -> ExchangeInfo                        (fees, knobs, outage state)
Resources: one per symbol, `exchange://{name}/ticker/{symbol}` (application/json, the
    current quote), announced as `ResourceUpdated` on the server's subscription bus at
    every price tick (2026-07-28 `subscriptions/listen`; `Client.listen(...)`).
Prompt: explain_spread(symbol).

Prices and time: the market is a pure function of (seed, symbol, absolute tick), the
tick being floor(unix_time / tick_interval_s) (see market.py). Exchanges sharing a seed
quote the same underlying mid at the same moment however long each has been up, and a
restarted exchange carries on where it would have been. Quote and book timestamps are
the time of the tick that made the prices, not the time of the call.

Orders: reserve_order prices a market order by walking the book that get_order_book
shows at that tick (volume-weighted average over the levels it needs); orders beyond
the full 100-level depth are refused. An idempotency key makes a retried reserve return
the original reservation; get_reservation answers a recovering coordinator by id or key
for the last 10,000 reservations. With `ledger_path`, balances and reservations survive
a restart.

How failures reach an MCP client (SDK 2.3 behaviour, checked in the tests):
- A failing *tool call* is a normal result with `is_error=True` and the message in
  `content[0].text` (prefixed "Error executing tool <name>: "). That covers bad
  arguments (schema validation, e.g. depth=0 or side="hold"), unknown symbols, ledger
  refusals (insufficient funds, confirm after cancel, unknown reservation id...), an
  unknown tool name, the error-rate knob ("simulated failure") and outage windows
  ("exchange outage (simulated)"). `Client.call_tool` does not raise for these.
- Other requests during an outage window (resources/read, the list methods, prompts,
  ping) raise `MCPError` with code -32603 and message "exchange outage (simulated)...".
  Connection plumbing (initialize, server/discover, subscriptions/listen,
  notifications) is exempt, so a session survives the outage and era negotiation is
  not skewed towards the legacy handshake by a failed discover.
- Reading an unknown resource URI raises `MCPError` -32602 (resource not found).

Knobs (from the profile): every tool call first sleeps base_latency_ms +/- jitter_ms
(asyncio sleep, never blocking the loop), then fails if inside an outage window, then
fails with probability error_rate. Simulated failures happen before the tool has any
effect, so a failed reserve/confirm/cancel changed nothing and may be retried.
The one exception is on purpose: lose_confirm_replies=N makes the next N successful
confirm_order calls execute and then fail ("simulated lost reply"), the in-doubt case a
coordinator must resolve by retrying the confirm or asking get_reservation.
"""

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from mcp import MCPError
from mcp.server.caching import CacheHint
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp_types import INTERNAL_ERROR, ToolAnnotations
from pydantic import BaseModel, Field

from exchange_fleet.ledger import DEFAULT_MAX_HISTORY, Fill, Ledger, LedgerError, Reservation
from exchange_fleet.ledger_file import LedgerFile
from exchange_fleet.market import (
    MAX_BOOK_DEPTH,
    BookFill,
    InsufficientLiquidityError,
    MarketModel,
    UnknownSymbolError,
    stable_seed,
)
from exchange_fleet.profiles import ExchangeProfile

SERVER_VERSION = "0.1.0"

OUTAGE_MESSAGE = "exchange outage (simulated)"
SIMULATED_FAILURE_MESSAGE = "simulated failure"
LOST_REPLY_MESSAGE = "simulated lost reply"

# The ledger's reservation history, i.e. how far back get_reservation and idempotent retries reach.
RESERVATION_HISTORY = DEFAULT_MAX_HISTORY
MAX_IDEMPOTENCY_KEY_LENGTH = 200

# Requests that keep working during an outage window: without them a client could not
# hold (or establish) a session across the outage, and a failed server/discover would
# push the SDK client's auto-negotiation into the legacy initialize handshake.
_OUTAGE_EXEMPT_METHODS = frozenset({"initialize", "server/discover", "subscriptions/listen"})

logger = logging.getLogger(__name__)


def ticker_uri(exchange: str, symbol: str) -> str:
    """The resource URI of one symbol's ticker on one exchange."""
    return f"exchange://{exchange}/ticker/{symbol}"


def _iso(unix_time: float) -> str:
    moment = datetime.fromtimestamp(unix_time, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- result models (their JSON schemas become the tools' output schemas) -------------


class Quote(BaseModel):
    symbol: str
    exchange: str
    bid: float
    ask: float
    last: float
    size: float = Field(description="Size of the last trade, in the base asset")
    mid: float
    timestamp: str = Field(
        description="ISO 8601 UTC time of the price tick that made these prices (not the time of the call)"
    )
    taker_fee: float = Field(description="Fraction of notional charged on execution, e.g. 0.001")
    tick: int = Field(
        description="Absolute price tick, floor(unix_time / tick_interval_s); grows by one at every price update"
    )
    bid_size: float = Field(description="Size available at the best bid (the order book's first bid level)")
    ask_size: float = Field(description="Size available at the best ask (the order book's first ask level)")


class OrderBook(BaseModel):
    symbol: str
    exchange: str
    bids: list[tuple[float, float]] = Field(description="[price, size] levels, best (highest) first")
    asks: list[tuple[float, float]] = Field(description="[price, size] levels, best (lowest) first")
    depth: int
    timestamp: str = Field(description="ISO 8601 UTC time of the price tick this book belongs to")
    tick: int


class ReservationResult(BaseModel):
    reservation_id: str
    exchange: str
    status: Literal["reserved", "confirmed", "cancelled", "expired"]
    symbol: str
    side: Literal["buy", "sell"]
    quantity: float
    price: float = Field(
        description="Execution price held by the reservation: the volume-weighted average of the book levels walked"
    )
    fee: float = Field(description="Taker fee charged on confirm, in the quote currency")
    fee_asset: str
    reserved_asset: str
    reserved_amount: float
    expires_at: str = Field(description="ISO 8601 UTC; unconfirmed reservations are released then")
    expires_in_s: float
    book_levels: int = Field(default=1, description="Order-book levels the price averages over (1 = at the touch)")
    limit_price: float | None = Field(default=None, description="The limit the order was reserved with, if any")
    idempotency_key: str | None = Field(default=None, description="The caller's key, if the reserve carried one")
    executed_at: str | None = Field(default=None, description="ISO 8601 UTC execution time once confirmed")


class ConfirmResult(BaseModel):
    reservation_id: str
    exchange: str
    status: Literal["confirmed"]
    symbol: str
    side: Literal["buy", "sell"]
    quantity: float
    price: float
    notional: float
    fee: float
    fee_asset: str
    executed_at: str = Field(description="ISO 8601 UTC; identical on every repeat confirm")


class CancelResult(BaseModel):
    reservation_id: str
    exchange: str
    status: Literal["cancelled", "expired"] = Field(
        description="'expired' when the reservation had already lapsed (its funds were already released)"
    )
    released_asset: str
    released_amount: float


class AssetBalance(BaseModel):
    total: float
    reserved: float
    available: float


class Balances(BaseModel):
    exchange: str
    balances: dict[str, AssetBalance]
    timestamp: str


class ExchangeInfo(BaseModel):
    exchange: str
    display_name: str
    version: str
    symbols: list[str]
    taker_fee: float
    spread_bps: float
    base_latency_ms: float
    jitter_ms: float
    error_rate: float
    price_bias: float
    tick_interval_s: float
    reservation_ttl_s: float
    outage_windows: list[tuple[float, float]]
    outage_period_s: float | None
    uptime_s: float
    in_outage: bool
    tick: int
    open_reservations: int
    tick_time: str = Field(description="ISO 8601 UTC time of the current price tick")
    max_book_depth: int = Field(description="Levels per side a reserve can walk; larger orders are refused")
    reservation_history: int = Field(description="How many past reservations get_reservation and retries can find")
    lose_confirm_replies: int = Field(description="Confirms still to be executed and then failed as lost replies")
    ledger_path: str | None = Field(description="File the ledger is persisted to, or null when in memory only")


# -- runtime state -------------------------------------------------------------------


class ExchangeRuntime:
    """Mutable state behind one server: market, ledger, knobs' RNG, ticker, bus.

    Kept separate from the MCP wiring so the behaviour (latency, faults, ticks) reads
    in one place. Every clock reading goes through `clock` (monotonic seconds) so
    tests can reason about elapsed time; wall-clock time is the boot instant plus the
    monotonic time elapsed since. The market's ticks and the ledger's times are in that
    unix time: ticks must be absolute (prices are a function of them), and ledger times
    must survive a restart when the ledger is persisted.
    """

    def __init__(
        self,
        profile: ExchangeProfile,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.profile = profile
        self.clock = clock
        self.started_at = clock()
        # Read once: afterwards wall time advances with `clock`, so a test driving `clock` drives everything.
        self.boot_unix = wall_clock()
        self.market = MarketModel(
            profile.symbols,
            seed=profile.seed,
            spread_bps=profile.spread_bps,
            price_bias=profile.price_bias,
            tick_interval_s=profile.tick_interval_s,
        )
        self.ledger = Ledger(
            profile.starting_balances,
            taker_fee=profile.taker_fee,
            reservation_ttl_s=profile.reservation_ttl_s,
            clock=self.unix_time,
            id_prefix=profile.name,
            max_history=RESERVATION_HISTORY,
            store=None if profile.ledger_path is None else LedgerFile(profile.ledger_path),
        )
        self.confirm_replies_to_lose = profile.lose_confirm_replies
        # Kept so the ticker can publish; the same instance is handed to MCPServer.
        self.bus = InMemorySubscriptionBus()
        # Separate, seeded stream for latency jitter and injected faults: reproducible
        # runs, and independent of the market's streams.
        self._fault_rng = random.Random(stable_seed(profile.seed, profile.name, "faults"))
        self._ticker: asyncio.Task[None] | None = None
        self._ticker_users = 0

    # time

    def elapsed_s(self) -> float:
        return self.clock() - self.started_at

    def unix_time(self) -> float:
        return self.boot_unix + self.elapsed_s()

    def now_iso(self) -> str:
        return _iso(self.unix_time())

    def current_tick(self) -> int:
        return self.market.tick_at(self.unix_time())

    def tick_iso(self, tick: int) -> str:
        return _iso(self.market.tick_time(tick))

    def outage_remaining_s(self) -> float | None:
        return self.profile.outage_remaining_s(self.elapsed_s())

    def outage_message(self, remaining_s: float) -> str:
        return f"{OUTAGE_MESSAGE}: exchange {self.profile.name!r} is down for another {remaining_s:.1f} s"

    # knobs

    async def gate(self) -> None:
        """Apply the latency, outage and error-rate knobs before a tool does anything."""
        profile = self.profile
        if profile.base_latency_ms or profile.jitter_ms:
            jitter = self._fault_rng.uniform(-profile.jitter_ms, profile.jitter_ms)
            await asyncio.sleep(max(0.0, profile.base_latency_ms + jitter) / 1000.0)
        remaining = self.outage_remaining_s()
        if remaining is not None:
            raise ToolError(self.outage_message(remaining))
        if profile.error_rate and self._fault_rng.random() < profile.error_rate:
            raise ToolError(f"{SIMULATED_FAILURE_MESSAGE} (error_rate={profile.error_rate:g}); nothing was changed")

    def lose_this_reply(self) -> bool:
        """Whether the confirm that has just executed should fail as a lost reply (counts the knob down)."""
        if self.confirm_replies_to_lose <= 0:
            return False
        self.confirm_replies_to_lose -= 1
        return True

    # ticker

    def start_ticker(self) -> None:
        # Reference-counted: the in-process client enters the lifespan once per
        # connection, and two connections must not double the tick rate.
        self._ticker_users += 1
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._run_ticker(), name=f"exchange-{self.profile.name}-ticker")

    async def stop_ticker(self) -> None:
        self._ticker_users -= 1
        if self._ticker_users > 0 or self._ticker is None:
            return
        task, self._ticker = self._ticker, None
        task.cancel()
        # Shielded so the ticker is reaped even when the lifespan exits under cancellation.
        with anyio.CancelScope(shield=True):
            await asyncio.wait({task})

    async def _run_ticker(self) -> None:
        uris = [ticker_uri(self.profile.name, s) for s in self.profile.symbols]
        last_tick = self.current_tick()
        while True:
            # Ticks are wall-clock boundaries shared by every exchange with this interval, so sleep until the
            # next one instead of a fixed interval from boot. The floor keeps a clock that stands still (a
            # test's manual clock) from spinning the loop.
            next_boundary = self.market.tick_time(last_tick + 1)
            await asyncio.sleep(max(next_boundary - self.unix_time(), 0.001))
            tick = self.current_tick()
            if tick == last_tick:
                continue
            last_tick = tick
            # Lapsed reservations are released eagerly too, not only when the next call
            # touches the ledger, so balances seen by resources stay current.
            self.ledger.expire_due()
            if self.outage_remaining_s() is not None:
                # A down exchange publishes nothing; prices keep moving underneath.
                continue
            for uri in uris:
                await self.bus.publish(ResourceUpdated(uri=uri))

    # views

    def quote(self, symbol: str) -> Quote:
        snap = self.market.quote(symbol, self.current_tick())
        return Quote(
            symbol=snap.symbol,
            exchange=self.profile.name,
            bid=snap.bid,
            ask=snap.ask,
            last=snap.last,
            size=snap.size,
            mid=snap.mid,
            timestamp=self.tick_iso(snap.tick),
            taker_fee=self.profile.taker_fee,
            tick=snap.tick,
            bid_size=snap.bid_size,
            ask_size=snap.ask_size,
        )

    def reservation_result(self, reservation: Reservation) -> ReservationResult:
        return ReservationResult(
            reservation_id=reservation.reservation_id,
            exchange=self.profile.name,
            status=reservation.status,
            symbol=reservation.symbol,
            side=reservation.side,
            quantity=float(reservation.quantity),
            price=float(reservation.price),
            fee=float(reservation.fee),
            fee_asset=reservation.symbol.split("-")[1],
            reserved_asset=reservation.reserved_asset,
            reserved_amount=float(reservation.reserved_amount),
            expires_at=_iso(reservation.expires_at),
            expires_in_s=round(max(0.0, reservation.expires_at - self.unix_time()), 3),
            book_levels=reservation.book_levels,
            limit_price=None if reservation.requested_limit is None else float(reservation.requested_limit),
            idempotency_key=reservation.idempotency_key,
            executed_at=None if reservation.fill is None else _iso(reservation.fill.executed_at),
        )

    def confirm_result(self, fill: Fill) -> ConfirmResult:
        return ConfirmResult(
            reservation_id=fill.reservation_id,
            exchange=self.profile.name,
            status="confirmed",
            symbol=fill.symbol,
            side=fill.side,
            quantity=float(fill.quantity),
            price=float(fill.price),
            notional=float(fill.notional),
            fee=float(fill.fee),
            fee_asset=fill.fee_asset,
            executed_at=_iso(fill.executed_at),
        )

    def balances(self) -> Balances:
        return Balances(
            exchange=self.profile.name,
            balances={
                asset: AssetBalance(total=float(b.total), reserved=float(b.reserved), available=float(b.available))
                for asset, b in self.ledger.get_balances().items()
            },
            timestamp=self.now_iso(),
        )

    def info(self) -> ExchangeInfo:
        p = self.profile
        tick = self.current_tick()
        return ExchangeInfo(
            exchange=p.name,
            display_name=p.display_name,
            version=SERVER_VERSION,
            symbols=list(p.symbols),
            taker_fee=p.taker_fee,
            spread_bps=p.spread_bps,
            base_latency_ms=p.base_latency_ms,
            jitter_ms=p.jitter_ms,
            error_rate=p.error_rate,
            price_bias=p.price_bias,
            tick_interval_s=p.tick_interval_s,
            reservation_ttl_s=p.reservation_ttl_s,
            outage_windows=list(p.outage_windows),
            outage_period_s=p.outage_period_s,
            uptime_s=round(self.elapsed_s(), 3),
            in_outage=self.outage_remaining_s() is not None,
            tick=tick,
            open_reservations=len(self.ledger.open_reservations()),
            tick_time=self.tick_iso(tick),
            max_book_depth=MAX_BOOK_DEPTH,
            reservation_history=RESERVATION_HISTORY,
            lose_confirm_replies=self.confirm_replies_to_lose,
            ledger_path=p.ledger_path,
        )


def _instructions(profile: ExchangeProfile) -> str:
    symbols = ", ".join(profile.symbols)
    return (
        f"{profile.display_name}: a simulated crypto exchange (not real money). "
        f"Symbols: {symbols}. Taker fee {profile.taker_fee:.4%} of notional, spread about "
        f"{profile.spread_bps:g} bp. Use get_quote / get_order_book for prices; prices change every "
        f"{profile.tick_interval_s:g} s on wall-clock tick boundaries and timestamps are the tick's time. "
        "Trading is two-phase: reserve_order(symbol, side, quantity, limit_price?, idempotency_key?) holds "
        "funds at a fixed price (the volume-weighted average of the book levels the quantity needs; more "
        f"than the {MAX_BOOK_DEPTH}-level book holds is refused) for {profile.reservation_ttl_s:g} s, then "
        "confirm_order(reservation_id) executes it exactly once (repeat confirms return the same fill) or "
        "cancel_order(reservation_id) releases it (repeat cancels are no-ops). Retrying a reserve with the "
        "same idempotency_key returns the original reservation. After a failure, "
        "get_reservation(reservation_id or idempotency_key) tells what became of a reservation "
        f"(the last {RESERVATION_HISTORY} are kept). Live tickers: resources "
        f"exchange://{profile.name}/ticker/{{symbol}}, updated at every price tick (subscribe with "
        "subscriptions/listen). get_exchange_info shows fees and simulation knobs."
    )


# -- server --------------------------------------------------------------------------


def build_exchange_server(
    profile: ExchangeProfile,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> MCPServer[ExchangeRuntime]:
    """Build the MCP server for one exchange; nothing runs until it is served.

    The ticker task starts in the server's lifespan (stdio run, Streamable HTTP
    session manager, or an in-process `Client(server)`) and stops with it. Outage
    windows are measured from this call. `wall_clock` is read once, here, for the
    unix time at start (tests pin it). Raises ValueError when the profile's ledger
    file cannot be read. See the module docstring for the tools and for how errors
    surface to clients.
    """
    runtime = ExchangeRuntime(profile, clock, wall_clock)

    @asynccontextmanager
    async def lifespan(_server: MCPServer[ExchangeRuntime]) -> AsyncIterator[ExchangeRuntime]:
        runtime.start_ticker()
        try:
            yield runtime
        finally:
            await runtime.stop_ticker()

    async def outage_middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        # tools/call is gated inside the tools (after the latency knob) so it fails as
        # an is_error result like every other tool failure; everything else that is not
        # connection plumbing fails here as a protocol error.
        if (
            ctx.method != "tools/call"
            and ctx.method not in _OUTAGE_EXEMPT_METHODS
            and not ctx.method.startswith("notifications/")
        ):
            remaining = runtime.outage_remaining_s()
            if remaining is not None:
                raise MCPError(
                    code=INTERNAL_ERROR,
                    message=runtime.outage_message(remaining),
                    data={"exchange": profile.name, "outage": True, "retry_after_s": round(remaining, 3)},
                )
        return await call_next(ctx)

    server: MCPServer[ExchangeRuntime] = MCPServer(
        name=f"exchange-{profile.name}",
        title=profile.display_name,
        description=f"Simulated crypto exchange '{profile.name}' for MCP orchestration demos and tests",
        instructions=_instructions(profile),
        version=SERVER_VERSION,
        lifespan=lifespan,
        subscriptions=runtime.bus,
        middleware=[outage_middleware],
        # Tickers change every tick: tell caching clients never to serve a stale read.
        cache_hints={"resources/read": CacheHint(ttl_ms=0)},
    )

    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

    def quote_or_error(symbol: str) -> Quote:
        try:
            return runtime.quote(symbol)
        except UnknownSymbolError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=read_only)
    async def get_quote(symbol: Annotated[str, Field(description="e.g. BTC-USD")]) -> Quote:
        """Current top-of-book quote (bid, ask, last trade) for one symbol."""
        await runtime.gate()
        return quote_or_error(symbol)

    @server.tool(annotations=read_only)
    async def get_order_book(
        symbol: Annotated[str, Field(description="e.g. BTC-USD")],
        depth: Annotated[int, Field(ge=1, le=MAX_BOOK_DEPTH, description="Levels per side")] = 10,
    ) -> OrderBook:
        """Order book with `depth` price levels per side, as [price, size] pairs."""
        await runtime.gate()
        try:
            book = runtime.market.order_book(symbol, depth, runtime.current_tick())
        except UnknownSymbolError as exc:
            raise ToolError(str(exc)) from None
        return OrderBook(
            symbol=symbol,
            exchange=profile.name,
            bids=list(book.bids),
            asks=list(book.asks),
            depth=depth,
            timestamp=runtime.tick_iso(book.tick),
            tick=book.tick,
        )

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False))
    async def reserve_order(
        symbol: Annotated[str, Field(description="e.g. BTC-USD")],
        side: Literal["buy", "sell"],
        quantity: Annotated[float, Field(gt=0, description="Amount of the base asset")],
        limit_price: Annotated[
            float | None,
            Field(
                gt=0,
                description="Worst acceptable price: refused if any book level the order needs is already worse",
            ),
        ] = None,
        idempotency_key: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
                description="Caller-chosen key: a retry with the same key returns the same reservation instead of "
                "reserving twice; reusing it for a different order is refused",
            ),
        ] = None,
    ) -> ReservationResult:
        """Phase one: hold funds for a market order, priced by walking the current order book.

        The held price is the volume-weighted average of the ask (buy) or bid (sell)
        levels that `quantity` needs, the same levels get_order_book shows at this
        tick; it is the execution price on confirm. Buys hold quantity*price*(1+taker_fee)
        of the quote currency, sells hold the base asset. Expires after the exchange's
        reservation TTL unless confirmed.
        """
        await runtime.gate()
        ledger = runtime.ledger
        try:
            if idempotency_key is not None:
                # Before pricing: a retry gets the original answer even if the market has moved since.
                replayed = ledger.replay_reservation(
                    idempotency_key, symbol=symbol, side=side, quantity=quantity, requested_limit=limit_price
                )
                if replayed is not None:
                    return runtime.reservation_result(replayed)
            fill = runtime.market.walk_book(symbol, side, quantity, runtime.current_tick())
        except (UnknownSymbolError, InsufficientLiquidityError, LedgerError) as exc:
            raise ToolError(str(exc)) from None
        if limit_price is not None:
            _check_limit(symbol, side, limit_price, fill)
        try:
            reservation = ledger.reserve_order(
                symbol,
                side,
                quantity,
                fill.price,
                idempotency_key=idempotency_key,
                requested_limit=limit_price,
                book_levels=fill.levels,
            )
        except LedgerError as exc:
            raise ToolError(str(exc)) from None
        return runtime.reservation_result(reservation)

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        )
    )
    async def confirm_order(reservation_id: str) -> ConfirmResult:
        """Phase two (commit): execute a reservation. Safe to retry: returns the same fill."""
        await runtime.gate()
        try:
            fill = runtime.ledger.confirm_order(reservation_id)
        except LedgerError as exc:
            raise ToolError(str(exc)) from None
        if runtime.lose_this_reply():
            # After the ledger has executed: the caller cannot tell this from a reply lost on the way back.
            logger.info("exchange %s: dropping the reply to confirm_order(%s) (knob)", profile.name, reservation_id)
            raise ToolError(
                f"{LOST_REPLY_MESSAGE} (lose_confirm_replies): the reply to this confirm_order was dropped and its"
                " outcome is unknown to the caller; retry confirm_order or ask get_reservation"
            )
        return runtime.confirm_result(fill)

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        )
    )
    async def cancel_order(reservation_id: str) -> CancelResult:
        """Phase two (abort): release a reservation. Cancelling twice is a no-op success."""
        await runtime.gate()
        try:
            reservation = runtime.ledger.cancel_order(reservation_id)
        except LedgerError as exc:
            raise ToolError(str(exc)) from None
        status = reservation.status
        assert status in ("cancelled", "expired")
        return CancelResult(
            reservation_id=reservation.reservation_id,
            exchange=profile.name,
            status=status,
            released_asset=reservation.reserved_asset,
            released_amount=float(reservation.reserved_amount),
        )

    @server.tool(annotations=read_only)
    async def get_reservation(
        reservation_id: Annotated[str | None, Field(description="The id reserve_order returned")] = None,
        idempotency_key: Annotated[
            str | None, Field(description="The key the reserve_order call carried, if its reply never arrived")
        ] = None,
    ) -> ReservationResult:
        """A reservation's current state (reserved, confirmed, cancelled or expired), by id or by idempotency key.

        For recovery after a crash or a lost reply; pass exactly one of the two. The
        last 10,000 reservations are kept.
        """
        await runtime.gate()
        if (reservation_id is None) == (idempotency_key is None):
            raise ToolError("pass exactly one of reservation_id and idempotency_key")
        try:
            if reservation_id is not None:
                reservation = runtime.ledger.get_reservation(reservation_id)
            else:
                assert idempotency_key is not None
                reservation = runtime.ledger.get_reservation_by_key(idempotency_key)
        except LedgerError as exc:
            raise ToolError(f"{exc} (this exchange remembers its last {RESERVATION_HISTORY} reservations)") from None
        return runtime.reservation_result(reservation)

    @server.tool(annotations=read_only)
    async def get_balances() -> Balances:
        """Balances per asset: total, reserved by open reservations, and available."""
        await runtime.gate()
        return runtime.balances()

    @server.tool(annotations=read_only)
    async def get_exchange_info() -> ExchangeInfo:
        """Exchange metadata: fees, symbols, simulation knobs, uptime and outage state."""
        await runtime.gate()
        return runtime.info()

    for symbol in profile.symbols:
        server.add_resource(
            FunctionResource.from_function(
                fn=_ticker_reader(runtime, symbol),
                uri=ticker_uri(profile.name, symbol),
                name=f"{profile.name}-{symbol}-ticker",
                title=f"{symbol} ticker on {profile.display_name}",
                description=f"Current {symbol} quote on {profile.name} as JSON; updated every tick",
                mime_type="application/json",
            )
        )

    @server.prompt()
    def explain_spread(symbol: str) -> str:
        """Ask the model to explain the current bid/ask spread of a symbol on this exchange."""
        quote = runtime.quote(symbol)  # UnknownSymbolError surfaces as a prompts/get error
        spread = quote.ask - quote.bid
        return (
            f"On {profile.display_name}, {symbol} is quoted bid {quote.bid} / ask {quote.ask} "
            f"(spread {spread:.2f}, {spread / quote.mid * 10_000:.1f} bp; last trade {quote.last}). "
            f"The taker fee is {profile.taker_fee:.4%}. Explain what this spread means for a trader buying "
            f"and immediately selling {symbol} here, including the fee on both legs, and whether it looks "
            "tight or wide for this asset."
        )

    return server


def _check_limit(symbol: str, side: Literal["buy", "sell"], limit_price: float, fill: BookFill) -> None:
    """Refuse an order whose limit the book cannot honour: every level it reaches must be at or inside the limit."""
    if side == "buy":
        if fill.best_price > limit_price:
            raise ToolError(f"limit_price {limit_price} is below the current ask {fill.best_price} for {symbol}")
        if fill.worst_price > limit_price:
            raise ToolError(
                f"limit_price {limit_price} is below {fill.worst_price}, the deepest of the {fill.levels} ask levels"
                f" needed to buy {fill.quantity} {symbol} (average price {fill.price})"
            )
    else:
        if fill.best_price < limit_price:
            raise ToolError(f"limit_price {limit_price} is above the current bid {fill.best_price} for {symbol}")
        if fill.worst_price < limit_price:
            raise ToolError(
                f"limit_price {limit_price} is above {fill.worst_price}, the deepest of the {fill.levels} bid levels"
                f" needed to sell {fill.quantity} {symbol} (average price {fill.price})"
            )


def _ticker_reader(runtime: ExchangeRuntime, symbol: str) -> Callable[[], Any]:
    # A factory (not a lambda in the loop) so each resource binds its own symbol.
    # Async so the read runs on the event loop, not in a worker thread racing the ticker.
    async def read_ticker() -> str:
        return runtime.quote(symbol).model_dump_json()

    return read_ticker
