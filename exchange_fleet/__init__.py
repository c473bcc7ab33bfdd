"""Simulated crypto exchanges served as real MCP servers.

The fleet feeds the orchestrator's demo, tests and benchmarks: each exchange is an
`MCPServer` (mcp SDK 2.3) with quote/order-book tools, a two-phase order ledger
(reserve -> confirm/cancel, idempotency keys, get_reservation for recovery, an optional
ledger file that survives restarts), ticker resources with change notifications, and
knobs for latency, jitter, error rate, price bias, outage windows and lost confirm
replies. Prices are a function of wall-clock time, so every exchange with the same seed
quotes the same underlying market, restarted or not.

Public entry points:

- `ExchangeProfile`, `DEMO_FLEET`, `profile_by_name`, `overrides_from_env` (profiles.py)
- `build_exchange_server(profile)` (server.py)
- `python -m exchange_fleet serve --profile NAME` / `python -m exchange_fleet list` (__main__.py)
"""

from exchange_fleet.profiles import DEMO_FLEET, ExchangeProfile, overrides_from_env, profile_by_name
from exchange_fleet.server import SERVER_VERSION, build_exchange_server, ticker_uri

__version__ = SERVER_VERSION

__all__ = [
    "DEMO_FLEET",
    "ExchangeProfile",
    "__version__",
    "build_exchange_server",
    "overrides_from_env",
    "profile_by_name",
    "ticker_uri",
]
