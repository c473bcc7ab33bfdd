"""Exchange profiles: the knobs that give each simulated exchange its character.

A profile is plain, frozen data so the same description can be printed by the CLI
(`python -m exchange_fleet list`), overridden from flags or environment variables,
and handed to `build_exchange_server` without any hidden state.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Transport = Literal["stdio", "streamable-http"]

DEFAULT_SYMBOLS: tuple[str, ...] = ("BTC-USD", "ETH-USD", "SOL-USD")

# Profile names end up in resource URIs (exchange://{name}/ticker/{symbol}) and in
# CLI flags, so keep them to a URI-host-safe alphabet.
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
# BASE-QUOTE, both upper-case tickers: the ledger derives the two assets from it.
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$")

ENV_PREFIX = "EXCHANGE_FLEET_"


def _default_balances() -> dict[str, float]:
    return {"USD": 100_000.0, "BTC": 2.0, "ETH": 20.0, "SOL": 500.0}


def split_symbol(symbol: str) -> tuple[str, str]:
    """Return (base, quote) of a "BASE-QUOTE" symbol, e.g. ("BTC", "USD")."""
    if not _SYMBOL_RE.match(symbol):
        raise ValueError(f"symbol {symbol!r} is not of the form BASE-QUOTE (e.g. 'BTC-USD')")
    base, quote = symbol.split("-")
    return base, quote


@dataclass(frozen=True)
class ExchangeProfile:
    """Everything that distinguishes one simulated exchange from another.

    Times are seconds unless the field name says otherwise; `outage_windows` are
    (start_s, end_s) offsets from the moment the server was built. When
    `outage_period_s` is set the windows repeat with that period (offsets are then
    taken modulo the period), which is how the demo's flaky exchange gets a
    recurring outage.

    `lose_confirm_replies`: the first N successful confirm_order calls execute the
    fill and then fail as if the reply had been lost, so a coordinator's in-doubt
    handling (retry the confirm, or ask get_reservation) can be exercised.
    `ledger_path`: a JSON file that balances and reservations are saved to after every
    change and resumed from at start; None keeps the ledger in memory only. Saving
    rewrites the whole (bounded) history, so it costs milliseconds per change.
    """

    name: str
    display_name: str = ""
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    base_latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    price_bias: float = 0.0
    taker_fee: float = 0.001
    spread_bps: float = 5.0
    starting_balances: dict[str, float] = field(default_factory=_default_balances)
    outage_windows: tuple[tuple[float, float], ...] = ()
    outage_period_s: float | None = None
    tick_interval_s: float = 1.0
    seed: int = 42
    reservation_ttl_s: float = 30.0
    transport: Transport = "stdio"
    http_port: int | None = None
    lose_confirm_replies: int = 0
    ledger_path: str | None = None

    def __post_init__(self) -> None:
        # Normalise containers first (frozen, so via object.__setattr__): callers may
        # pass lists from JSON or argparse, and a private dict copy means no caller can
        # mutate a profile's balances after the fact.
        object.__setattr__(self, "symbols", tuple(self.symbols))
        object.__setattr__(self, "outage_windows", tuple((float(a), float(b)) for a, b in self.outage_windows))
        object.__setattr__(self, "starting_balances", {str(k): float(v) for k, v in self.starting_balances.items()})
        if not self.display_name:
            object.__setattr__(self, "display_name", f"{self.name.capitalize()} Exchange")
        self._validate()

    def _validate(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"profile name {self.name!r} must start with a lower-case letter and contain only a-z, 0-9 and '-'"
                " (at most 40 characters)"
            )
        if not self.symbols:
            raise ValueError(f"profile {self.name!r}: symbols must not be empty")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"profile {self.name!r}: symbols contain duplicates: {self.symbols}")
        for symbol in self.symbols:
            try:
                split_symbol(symbol)
            except ValueError as exc:
                raise ValueError(f"profile {self.name!r}: {exc}") from None
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"profile {self.name!r}: seed must be an integer, got {self.seed!r}")
        _check_finite(self.name, "base_latency_ms", self.base_latency_ms, low=0.0)
        _check_finite(self.name, "jitter_ms", self.jitter_ms, low=0.0)
        _check_finite(self.name, "error_rate", self.error_rate, low=0.0, high=1.0)
        # A bias of -100% would quote zero prices; +/-50% is already absurd for a demo.
        _check_finite(self.name, "price_bias", self.price_bias, low=-0.5, high=0.5)
        _check_finite(self.name, "taker_fee", self.taker_fee, low=0.0, high=0.1)
        _check_finite(self.name, "spread_bps", self.spread_bps, low=0.0, high=1000.0)
        _check_finite(self.name, "tick_interval_s", self.tick_interval_s, low=0.01)
        _check_finite(self.name, "reservation_ttl_s", self.reservation_ttl_s, low=0.01)
        for asset, amount in self.starting_balances.items():
            if not re.match(r"^[A-Z0-9]{2,10}$", asset):
                raise ValueError(f"profile {self.name!r}: balance asset {asset!r} is not an upper-case ticker")
            _check_finite(self.name, f"starting_balances[{asset!r}]", amount, low=0.0)
        if self.outage_period_s is not None:
            _check_finite(self.name, "outage_period_s", self.outage_period_s, low=0.01)
        for start, end in self.outage_windows:
            if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
                raise ValueError(f"profile {self.name!r}: outage window ({start}, {end}) must satisfy 0 <= start < end")
            if self.outage_period_s is not None and end > self.outage_period_s:
                raise ValueError(
                    f"profile {self.name!r}: outage window ({start}, {end}) ends after outage_period_s="
                    f"{self.outage_period_s}; periodic windows must fit inside one period"
                )
        if self.transport not in ("stdio", "streamable-http"):
            raise ValueError(f"profile {self.name!r}: transport must be 'stdio' or 'streamable-http'")
        if self.http_port is not None and not (0 < self.http_port < 65536):
            raise ValueError(f"profile {self.name!r}: http_port {self.http_port} is not a valid TCP port")
        if (
            not isinstance(self.lose_confirm_replies, int)
            or isinstance(self.lose_confirm_replies, bool)
            or self.lose_confirm_replies < 0
        ):
            raise ValueError(
                f"profile {self.name!r}: lose_confirm_replies must be an integer >= 0,"
                f" got {self.lose_confirm_replies!r}"
            )
        if self.ledger_path is not None and (not isinstance(self.ledger_path, str) or not self.ledger_path.strip()):
            raise ValueError(f"profile {self.name!r}: ledger_path must be a non-empty path or None")

    def __hash__(self) -> int:
        # Explicit because the generated hash would choke on the balances dict; profiles
        # are handy as dict keys (e.g. one running server per profile).
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def outage_remaining_s(self, elapsed_s: float) -> float | None:
        """Seconds left in the outage active at `elapsed_s` after start, or None if up."""
        t = elapsed_s
        if self.outage_period_s is not None:
            t = elapsed_s % self.outage_period_s
        for start, end in self.outage_windows:
            if start <= t < end:
                return end - t
        return None

    def with_overrides(self, **changes: Any) -> ExchangeProfile:
        """A copy with some knobs changed; validation runs again on the result."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown profile field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (tuples become lists) for `list` output and tool results."""
        data = dataclasses.asdict(self)
        data["symbols"] = list(self.symbols)
        data["outage_windows"] = [list(w) for w in self.outage_windows]
        return data


def _check_finite(profile: str, field_name: str, value: float, *, low: float, high: float | None = None) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"profile {profile!r}: {field_name} must be a finite number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"profile {profile!r}: {field_name} must be {bound}, got {value}")


# All demo exchanges share one seed on purpose: they then follow the same underlying
# random walk (one "global" market), so differences between them come only from their
# knobs - exactly what the orchestrator's fusion and routing are meant to notice.
_DEMO_SEED = 42

DEMO_FLEET: tuple[ExchangeProfile, ...] = (
    ExchangeProfile(
        name="alpha",
        display_name="Alpha (steady reference)",
        base_latency_ms=5.0,
        jitter_ms=2.0,
        taker_fee=0.001,
        spread_bps=4.0,
        seed=_DEMO_SEED,
    ),
    ExchangeProfile(
        name="beta",
        display_name="Beta (quotes ~0.5% high)",
        base_latency_ms=10.0,
        jitter_ms=5.0,
        price_bias=0.005,
        taker_fee=0.0008,
        spread_bps=6.0,
        seed=_DEMO_SEED,
    ),
    ExchangeProfile(
        name="gamma",
        display_name="Gamma (slow)",
        base_latency_ms=150.0,
        jitter_ms=50.0,
        taker_fee=0.0006,
        spread_bps=3.0,
        seed=_DEMO_SEED,
    ),
    ExchangeProfile(
        name="delta",
        display_name="Delta (flaky, periodic outage)",
        base_latency_ms=20.0,
        jitter_ms=15.0,
        error_rate=0.2,
        taker_fee=0.0005,
        spread_bps=8.0,
        # Down for 10 s in every minute, starting 20 s after boot.
        outage_windows=((20.0, 30.0),),
        outage_period_s=60.0,
        seed=_DEMO_SEED,
    ),
    ExchangeProfile(
        name="epsilon",
        display_name="Epsilon (served over Streamable HTTP)",
        base_latency_ms=8.0,
        jitter_ms=4.0,
        taker_fee=0.0009,
        spread_bps=5.0,
        seed=_DEMO_SEED,
        transport="streamable-http",
        http_port=8765,
    ),
)


def profile_by_name(name: str) -> ExchangeProfile:
    """The demo profile called `name`; ValueError naming the known ones otherwise."""
    for profile in DEMO_FLEET:
        if profile.name == name:
            return profile
    known = ", ".join(p.name for p in DEMO_FLEET)
    raise ValueError(f"unknown exchange profile {name!r}; known profiles: {known}")


def parse_outage(text: str) -> tuple[float, float]:
    """Parse "START:END" (seconds after start) into a window tuple."""
    try:
        start_s, end_s = text.split(":")
        return float(start_s), float(end_s)
    except ValueError:
        raise ValueError(f"outage window {text!r} must look like START:END in seconds, e.g. 20:30") from None


# Environment variable -> (profile field, parser). Lets a launcher (e.g. the
# orchestrator's registry starting stdio children) tweak knobs without building a
# command line.
_ENV_KNOBS: dict[str, tuple[str, Any]] = {
    "LATENCY_MS": ("base_latency_ms", float),
    "JITTER_MS": ("jitter_ms", float),
    "ERROR_RATE": ("error_rate", float),
    "PRICE_BIAS": ("price_bias", float),
    "TAKER_FEE": ("taker_fee", float),
    "SPREAD_BPS": ("spread_bps", float),
    "TICK_INTERVAL_S": ("tick_interval_s", float),
    "SEED": ("seed", int),
    "RESERVATION_TTL_S": ("reservation_ttl_s", float),
    "OUTAGE_PERIOD_S": ("outage_period_s", float),
    "OUTAGES": ("outage_windows", lambda v: tuple(parse_outage(w) for w in v.split(",") if w.strip())),
    "LOSE_CONFIRM_REPLIES": ("lose_confirm_replies", int),
    "LEDGER_PATH": ("ledger_path", str),
}


def overrides_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Profile overrides from EXCHANGE_FLEET_* variables (e.g. EXCHANGE_FLEET_LATENCY_MS=200).

    EXCHANGE_FLEET_OUTAGES takes comma-separated START:END windows. Empty values
    are ignored; unparsable ones raise ValueError naming the variable.
    """
    overrides: dict[str, Any] = {}
    for suffix, (field_name, parse) in _ENV_KNOBS.items():
        raw = environ.get(ENV_PREFIX + suffix, "").strip()
        if not raw:
            continue
        try:
            overrides[field_name] = parse(raw)
        except ValueError as exc:
            raise ValueError(f"{ENV_PREFIX}{suffix}={raw!r}: {exc}") from None
    return overrides
