"""ORM work from the event loop outside Django's request cycle: `await with_database(work, *args)`.

Two ways in are served outside Django's request handler: the MCP endpoint (mcp_endpoint/asgi.py routes `/mcp` before
Django sees the request) and the REST API's fast lane (orchestrator_site/api_fast_lane.py hands token requests to the
serving path's `AsyncAPIView`s: tool calls, resource reads, prompts, fused queries, balanced calls). None of Django's
request cycle runs for them: no `request_started`/`request_finished`, hence no `close_old_connections()`, and no
per-request thread (Django's handler gives each request its own sync thread; here `sync_to_async` runs on asgiref's
one process-wide sync thread). That thread's connection was therefore kept for the life of the process, whatever
CONN_MAX_AGE says, and never checked: once PostgreSQL ended it (a restart, an idle or administrator's termination)
every database read on those paths failed with "the connection is closed" (a 500 for each request that needed the
database) until the process restarted.

`with_database` runs the work on that same thread (thread-sensitive, as before: these reads and writes are short) and
keeps that thread's connection while it works: a connection that met an error and no longer answers is let go
before the work (the work connects again) and after it, and so is one older than CONN_MAX_AGE when that is set (> 0).
With CONN_MAX_AGE=0 (the default) Django closes a request's connection at the request's end; this thread serves
every request of the fast paths, and opening a connection per step cost ~1.7 ms on SQLite (measured: 2.3 ms for a
read on a new connection, 0.56 ms on a kept one; a fused query makes up to three steps), so it is kept for as long
as it works. A connection inside an atomic block is left alone: that transaction is someone else's (a test's, on the
thread that runs the event loop under `async_to_sync`), and closing it would end it. The request that meets a
connection the database ended fails once (the endpoint and `AsyncAPIView` answer 503, the database cannot be
reached); the next one connects again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

Params = ParamSpec("Params")
Result = TypeVar("Result")


def _let_go_of_broken_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.connection is None or connection.in_atomic_block:
            continue
        if connection.errors_occurred:
            if connection.is_usable():
                connection.errors_occurred = False
            else:
                connection.close()
        elif connection.settings_dict["CONN_MAX_AGE"] and connection.close_at is not None:
            connection.close_if_unusable_or_obsolete()


def _with_usable_connection(work: Callable[Params, Result], *args: Params.args, **kwargs: Params.kwargs) -> Result:
    _let_go_of_broken_connections()
    try:
        return work(*args, **kwargs)
    finally:
        _let_go_of_broken_connections()


async def with_database(work: Callable[Params, Result], *args: Params.args, **kwargs: Params.kwargs) -> Result:
    """`work(*args, **kwargs)` (sync, ORM) on the sync thread, on a usable connection; never blocks the loop."""
    return await sync_to_async(_with_usable_connection)(work, *args, **kwargs)
