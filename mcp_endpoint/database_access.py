"""The MCP endpoint's ORM work from the event loop: `await with_database(work, *args)`.

The endpoint is served outside Django's request handler (mcp_endpoint/asgi.py routes `/mcp` before Django sees the
request), so none of Django's request cycle runs for it: no `request_started`/`request_finished`, hence no
`close_old_connections()`, and no per-request thread (Django's handler gives each request its own sync thread; here
`sync_to_async` runs on asgiref's one process-wide sync thread). That thread's connection was therefore kept for the
life of the process, whatever CONN_MAX_AGE says, and never checked: once PostgreSQL ended it (a restart, an idle or
administrator's termination) every database read of the endpoint failed with "the connection is closed" (a 500 for
each request whose token was not cached) until the process restarted.

`with_database` runs the work on that same thread (thread-sensitive, as before: the endpoint's reads are short) and
treats the thread's connections as Django's request cycle treats a request's: an unusable or obsolete connection is
let go before the work (the work connects again) and after it (CONN_MAX_AGE=0, the default here: closed after each).
A connection inside an atomic block is left alone: that transaction is someone else's (a test's, on the thread that
runs the event loop under `async_to_sync`), and closing it would end it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

Params = ParamSpec("Params")
Result = TypeVar("Result")


def _let_go_of_old_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


def _with_usable_connection(work: Callable[Params, Result], *args: Params.args, **kwargs: Params.kwargs) -> Result:
    _let_go_of_old_connections()
    try:
        return work(*args, **kwargs)
    finally:
        _let_go_of_old_connections()


async def with_database(work: Callable[Params, Result], *args: Params.args, **kwargs: Params.kwargs) -> Result:
    """`work(*args, **kwargs)` (sync, ORM) on the sync thread, on a usable connection; never blocks the loop."""
    return await sync_to_async(_with_usable_connection)(work, *args, **kwargs)
