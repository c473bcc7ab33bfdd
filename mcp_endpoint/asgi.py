"""ASGI: requests to `/mcp/` and `/mcp/servers/<name>/` go to the MCP endpoint, everything else to the inner
application (Django and Channels).

Paths (with or without the trailing slash; the SDK's transports do not look at the path):
- `/mcp`, `/mcp/`: the aggregate (mcp_endpoint/aggregate.py), served by the SDK's StreamableHTTPSessionManager;
- `/mcp/servers/<name>`, `/mcp/servers/<name>/`: `mcp_endpoint.passthrough.endpoint_for(name).handle(scope, receive,
  send)` (404 while that module is not there);
- anything else under /mcp: 404.

Every request, in this order: the Origin/Host check (403), Bearer authentication (401 with WWW-Authenticate), a role
(403 for a token whose user has none), then the endpoint, with the Caller in `scope["mcp_caller"]` and the SDK's
credential identity in `scope["user"]` (see mcp_endpoint/authentication.py).

The session manager's `run()` must be alive while it serves. The web server runs uvicorn with `lifespan="off"`
(Django answers no lifespan events), so it is started on the first request, as a task of the serving loop, and
stopped by `McpEndpointRouter.stop()`, which `serve` has the web server call when it stops (before it waits for the
open connections: the sessions' GET streams end then, instead of holding the shutdown for its grace period). After
`stop()` the endpoint answers 503 on that loop. One runtime per event loop: tests serve the same application object
from several uvicorn servers, one after another, each on a loop of its own.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from django.db import DatabaseError

from mcp_endpoint.authentication import (
    CALLER_SCOPE_KEY,
    Unauthenticated,
    caller_from_scope,
    has_any_role,
    origin_allowed,
    refuse_origin,
    refuse_unauthenticated,
    refuse_without_role,
    sdk_user_for,
)
from mcp_endpoint.session_managers import RunningSessionManager, plain_answer

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)

MCP_PREFIX = "/mcp"
# Server names are slugs (registry/models.py); the name in the path is matched as such, nothing else.
_SERVER_PATH = re.compile(r"^/mcp/servers/(?P<name>[A-Za-z0-9_-]{1,200})/?$")


def is_mcp_path(path: str) -> bool:
    return path == MCP_PREFIX or path.startswith(MCP_PREFIX + "/")


def _aggregate_runtime(loop: asyncio.AbstractEventLoop) -> RunningSessionManager:
    """The `/mcp/` session manager, running on one event loop."""
    from mcp_endpoint.aggregate import build_aggregate_server

    return RunningSessionManager(build_aggregate_server(), loop, what="/mcp/")


class McpEndpointRouter:
    """Wraps the site's ASGI application: HTTP requests under /mcp go to the MCP endpoint."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self._runtimes: dict[asyncio.AbstractEventLoop, RunningSessionManager] = {}
        self._stopped_loops: set[asyncio.AbstractEventLoop] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_mcp_path(scope["path"]):
            await self._serve(scope, receive, send)
            return
        await self.inner(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        server_match = _SERVER_PATH.match(path)
        if path not in (MCP_PREFIX, MCP_PREFIX + "/") and server_match is None:
            await plain_answer(send, 404, "Not found. The MCP endpoints are /mcp/ and /mcp/servers/<name>/.")
            return
        if not origin_allowed(scope):
            await refuse_origin(send)
            return
        try:
            caller = await caller_from_scope(scope)
        except Unauthenticated as problem:
            await refuse_unauthenticated(send, problem)
            return
        except DatabaseError as error:
            # The token could not be looked up (the database is down or the connection was lost; the next request
            # connects again, orchestrator_site/database_access.py): the service is unavailable, the token not invalid.
            # No traceback: its frames hold the key.
            logger.error("the MCP endpoint could not look a Bearer token up: %s: %s", type(error).__name__, error)
            await plain_answer(send, 503, "The MCP endpoint cannot reach its database; try again shortly.")
            return
        if not has_any_role(caller):
            await refuse_without_role(send)
            return
        scope = {**scope, CALLER_SCOPE_KEY: caller, "user": sdk_user_for(caller, scope)}
        loop = asyncio.get_running_loop()
        if loop in self._stopped_loops:
            await plain_answer(send, 503, "The MCP endpoint is stopping.")
            return
        if server_match is not None:
            await self._serve_passthrough(server_match["name"], scope, receive, send)
            return
        runtime = self._runtime_for(loop)
        try:
            await runtime.ready()
        except Exception:
            # Said in the log once per failed start; the next request tries a new one.
            if self._runtimes.get(loop) is runtime:
                del self._runtimes[loop]
                logger.exception("the /mcp/ session manager could not start")
            await plain_answer(send, 503, "The MCP endpoint could not start; see the server's log.")
            return
        await runtime.manager.handle_request(scope, receive, send)

    def _runtime_for(self, loop: asyncio.AbstractEventLoop) -> RunningSessionManager:
        # No await between the lookup and the insertion: two first requests at once share one runtime.
        for stale in [known for known in self._runtimes if known.is_closed()]:
            del self._runtimes[stale]
        self._stopped_loops = {known for known in self._stopped_loops if not known.is_closed()}
        runtime = self._runtimes.get(loop)
        if runtime is None:
            runtime = self._runtimes[loop] = _aggregate_runtime(loop)
        return runtime

    async def _serve_passthrough(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        passthrough = _passthrough_module()
        endpoint_for = getattr(passthrough, "endpoint_for", None)
        if endpoint_for is None:
            await plain_answer(send, 404, "Not found: /mcp/servers/<name>/ is not available in this version.")
            return
        endpoint = endpoint_for(name)
        await endpoint.handle(scope, receive, send)

    async def stop(self) -> None:
        """Stop the endpoint on the running loop: the aggregate's sessions and the passthrough's. Call it on the
        loop that served the requests, before the process's loop ends. Later requests on that loop answer 503."""
        loop = asyncio.get_running_loop()
        self._stopped_loops.add(loop)
        runtime = self._runtimes.pop(loop, None)
        if runtime is not None:
            await runtime.stop()
        shutdown = getattr(_passthrough_module(), "shutdown", None)
        if shutdown is not None:
            try:
                await shutdown()
            except Exception:
                logger.exception("the MCP passthrough failed while stopping")


def _passthrough_module() -> Any:
    try:
        return importlib.import_module("mcp_endpoint.passthrough")
    except ModuleNotFoundError as error:
        if error.name != "mcp_endpoint.passthrough":
            raise
        return None
