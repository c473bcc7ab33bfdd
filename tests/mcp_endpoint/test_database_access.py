"""The MCP endpoint's database connection (orchestrator_site/database_access.py), through a real uvicorn serving the
site and the SDK's Client: the endpoint runs outside Django's request cycle, so it lets its sync thread's connection go
itself, and a connection the database ended does not take `/mcp/` down (before: every request with a token not yet
cached was a 500, "the connection is closed", until the process restarted)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, User
from django.db import DEFAULT_DB_ALIAS, connection, connections
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from rest_framework.authtoken.models import Token

from registry.permissions import OPERATOR_GROUP
from tests.mcp_endpoint.live_server import serving

pytestmark = pytest.mark.django_db(transaction=True)

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="ends a session server-side (pg_terminate_backend)"
)


def fresh_key() -> str:
    """An operator's token the endpoint has not seen: its caller cache cannot answer, the database must."""
    user = User.objects.create_user(username=f"agent-{User.objects.count() + 1}")
    user.groups.add(Group.objects.get_or_create(name=OPERATOR_GROUP)[0])
    return Token.objects.create(user=user).key


def tools_listed(base_url: str, key: str) -> list[str]:
    async def session() -> list[str]:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
            Client(streamable_http_client(f"{base_url}/mcp/", http_client=http)) as client,
        ):
            return [tool.name for tool in (await client.list_tools()).tools]

    return asyncio.run(session())


def initialize_status(base_url: str, key: str) -> tuple[int, str]:
    """The HTTP status of one initialize POST (what a client sees before any JSON-RPC)."""
    response = httpx2.post(
        f"{base_url}/mcp/",
        headers={"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"},
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        timeout=30,
    )
    return response.status_code, response.text


def on_the_sync_thread(work):  # type: ignore[no-untyped-def]
    """Run `work()` on asgiref's process-wide sync thread, the one the endpoint's `sync_to_async` reads use."""
    return asyncio.run(sync_to_async(work)())


def sync_thread_holds_a_connection() -> bool:
    return on_the_sync_thread(lambda: connections[DEFAULT_DB_ALIAS].connection is not None)


def sync_thread_connection_id() -> int | None:
    """Which DB-API connection the sync thread holds now (None: none)."""

    def current() -> int | None:
        held = connections[DEFAULT_DB_ALIAS].connection
        return None if held is None else id(held)

    return on_the_sync_thread(current)


@contextmanager
def persistent_connections() -> Iterator[None]:
    """CONN_MAX_AGE=None (connections kept): the settings dict every thread's connection is made from."""
    settings_dict = connections[DEFAULT_DB_ALIAS].settings_dict
    before = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = None
    try:
        yield
    finally:
        settings_dict["CONN_MAX_AGE"] = before
        on_the_sync_thread(lambda: connections[DEFAULT_DB_ALIAS].close())


def end_the_sync_threads_session() -> None:
    """What a database restart or an idle-session timeout does to the endpoint's connection."""

    def backend_pid() -> int:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    pid = on_the_sync_thread(backend_pid)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone()[0] is True


def test_the_endpoint_keeps_one_working_connection_across_requests():
    assert connections[DEFAULT_DB_ALIAS].settings_dict["CONN_MAX_AGE"] == 0  # the site's setting
    with serving() as base_url:
        assert tools_listed(base_url, fresh_key()) == []  # no fleet: nothing offered, still answered
        first = sync_thread_connection_id()
        assert first is not None
        assert tools_listed(base_url, fresh_key()) == []  # a new key: read on the same connection
        assert sync_thread_connection_id() == first


@on_postgresql
def test_a_connection_the_database_ended_does_not_take_the_endpoint_down():
    with serving() as base_url:
        assert tools_listed(base_url, fresh_key()) == []
        with persistent_connections():
            assert initialize_status(base_url, fresh_key())[0] == 200
            assert sync_thread_holds_a_connection()
            end_the_sync_threads_session()
            # Kept connections are not checked before use (Django's CONN_HEALTH_CHECKS is off): the request that
            # finds it ended is refused as unavailable, not as a bad token and not as a 500...
            status, text = initialize_status(base_url, fresh_key())
            assert status == 503 and "database" in text
            # ...and the connection is let go, so the next one is served.
            assert tools_listed(base_url, fresh_key()) == []
