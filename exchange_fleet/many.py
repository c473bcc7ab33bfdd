"""Many simulated exchanges in one process, each at its own Streamable HTTP path: `/x0/mcp`, `/x1/mcp`, ...

One Python process per exchange would cost a hundred megabytes each; the benchmarks and scale tests need hundreds of
servers, and a real MCP host often serves several endpoints too. Each exchange is a full `MCPServer` with its own
session manager (and ticker), sharing only the event loop and the port.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from exchange_fleet.profiles import ExchangeProfile
from exchange_fleet.server import build_exchange_server


def exchange_path(index: int) -> str:
    return f"/x{index}/mcp"


def copy_ledger_path(base_path: str | None, index: int) -> str | None:
    """`ledgers/alpha.json` -> `ledgers/alpha-3.json`: one ledger file per copy, never shared."""
    if base_path is None:
        return None
    path = Path(base_path)
    return str(path.with_name(f"{path.stem}-{index}{path.suffix}"))


def build_many_app(base: ExchangeProfile, count: int, host: str = "127.0.0.1") -> Starlette:
    """One ASGI app serving `count` copies of `base` (named <base>-<i>, each with its own seed and ledger file)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    apps: list[Starlette] = []
    routes: list[BaseRoute] = []
    for index in range(count):
        profile = base.with_overrides(
            name=f"{base.name}-{index}", seed=base.seed + index, ledger_path=copy_ledger_path(base.ledger_path, index)
        )
        app = build_exchange_server(profile).streamable_http_app(streamable_http_path=exchange_path(index), host=host)
        apps.append(app)
        routes.extend(app.routes)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Each exchange's session manager must run for its route to answer.
        async with contextlib.AsyncExitStack() as stack:
            for app in apps:
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    return Starlette(routes=routes, lifespan=lifespan)
