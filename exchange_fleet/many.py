"""Many simulated exchanges in one process, each at its own Streamable HTTP path: `/x0/mcp`, `/x1/mcp`, ...

One Python process per exchange would cost a hundred megabytes each; the benchmarks and scale tests need hundreds of
servers, and a real MCP host often serves several endpoints too. Each exchange is a full `MCPServer` with its own
session manager (and ticker), sharing only the event loop and the port.

`ExchangeHost` (`serve-host`) makes fresh exchanges on request instead, each as `serve` with the given flags would.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.abc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

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


# ---------------------------------------------------------------------------------------------------------------------
# A host of fresh exchanges, made on request


def hosted_exchange_path(key: str) -> str:
    return f"/e/{key}/mcp"


class ExchangeHost:
    """One process making a fresh exchange on every `POST /exchanges` (JSON `{"argv": [serve flags]}`, answered with
    `{"key", "path"}`), served at `/e/<key>/mcp` until `DELETE /exchanges/<key>`.

    Each exchange is what `python -m exchange_fleet serve <flags>` would build (its own runtime, ledger, ticker and
    session manager), only without a process of its own: a Python process costs about a second of CPU for the SDK's
    imports, and the test suite would otherwise start one for nearly every test that needs an exchange.
    `profile_for` turns the flags into a profile the way the command line does.
    """

    def __init__(self, profile_for: Callable[[list[str]], ExchangeProfile], host: str = "127.0.0.1") -> None:
        self._profile_for = profile_for
        self._host = host
        self._exchanges: dict[str, tuple[Starlette, anyio.Event]] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._keys = itertools.count(1)
        self.control = Starlette(
            routes=[
                Route("/exchanges", self._create, methods=["POST"]),
                Route("/exchanges/{key}", self._retire, methods=["DELETE"]),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            yield
            for _exchange_app, stop in self._exchanges.values():
                stop.set()
        self._task_group = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/e/"):
            entry = self._exchanges.get(path.split("/")[2])
            if entry is None:
                await PlainTextResponse("no such exchange", status_code=404)(scope, receive, send)
                return
            await entry[0](scope, receive, send)
            return
        await self.control(scope, receive, send)

    async def _create(self, request: Request) -> Response:
        body = await request.json()
        argv = body.get("argv") if isinstance(body, dict) else None
        if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
            return JSONResponse({"error": "argv must be a list of strings"}, status_code=400)
        try:
            profile = self._profile_for(argv).with_overrides(transport="streamable-http")
            server = build_exchange_server(profile)
        except (ValueError, OSError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        key = str(next(self._keys))
        app = server.streamable_http_app(streamable_http_path=hosted_exchange_path(key), host=self._host)
        stop = anyio.Event()
        assert self._task_group is not None, "the host's lifespan is not running"
        # The exchange's session manager (and ticker) run in a task of the host's lifespan, not of this request.
        await self._task_group.start(self._run_exchange, app, stop)
        self._exchanges[key] = (app, stop)
        return JSONResponse({"key": key, "path": hosted_exchange_path(key)}, status_code=201)

    async def _retire(self, request: Request) -> Response:
        entry = self._exchanges.pop(request.path_params["key"], None)
        if entry is None:
            return JSONResponse({"error": "no such exchange"}, status_code=404)
        entry[1].set()
        return Response(status_code=204)

    @staticmethod
    async def _run_exchange(app: Starlette, stop: anyio.Event, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with app.router.lifespan_context(app):
            task_status.started()
            await stop.wait()
