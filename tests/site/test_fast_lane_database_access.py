"""The REST serving path's database connection (orchestrator_site/database_access.py), through a real uvicorn serving
the site and a live demo exchange behind the fleet: `POST /api/servers/<name>/call/` with `Authorization: Token` goes
through the API fast lane (orchestrator_site/api_fast_lane.py), past Django's request cycle, so it lets its sync
thread's connection go itself. A connection PostgreSQL ended costs at most one request, answered 503 (the database
cannot be reached), never a 500 with a traceback; the next request connects again. Before: every read on that path
(the token's caller, the server's definition) failed until the process restarted."""

from __future__ import annotations

import httpx2
import pytest
from django.contrib.auth.models import Group, User
from django.db import DEFAULT_DB_ALIAS, connection, connections
from rest_framework.authtoken.models import Token

from registry.api_calls import servers
from registry.permissions import OPERATOR_GROUP
from tests.exchanges import register_exchange, wait_discovered
from tests.mcp_endpoint.live_server import serving
from tests.mcp_endpoint.test_database_access import (
    end_the_sync_threads_session,
    persistent_connections,
    sync_thread_connection_id,
    sync_thread_holds_a_connection,
)

pytestmark = pytest.mark.django_db(transaction=True)

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="ends a session server-side (pg_terminate_backend)"
)

QUOTE = {"tool": "get_quote", "arguments": {"symbol": "BTC-USD"}}


def fresh_key() -> str:
    """An operator's token the site has not seen: its caller cache cannot answer, the database must."""
    user = User.objects.create_user(username=f"caller-{User.objects.count() + 1}")
    user.groups.add(Group.objects.get_or_create(name=OPERATOR_GROUP)[0])
    return Token.objects.create(user=user).key


def call_quote(base_url: str, key: str) -> httpx2.Response:
    return httpx2.post(
        f"{base_url}/api/servers/ex-live/call/", headers={"Authorization": f"Token {key}"}, json=QUOTE, timeout=30
    )


def answered_a_quote(response: httpx2.Response) -> bool:
    return response.status_code == 200 and response.json()["result"]["structured_content"]["symbol"] == "BTC-USD"


def refused_as_unavailable(response: httpx2.Response) -> bool:
    """503 saying the database cannot be reached, as JSON: no traceback, no internal error."""
    detail = response.json()["detail"]
    return response.status_code == 503 and "database" in detail and "Traceback" not in response.text


@pytest.fixture
def live_exchange(live_fleet) -> None:  # type: ignore[no-untyped-def]
    register_exchange("ex-live")
    wait_discovered(live_fleet, "ex-live")


def test_the_fast_lane_keeps_one_working_connection_across_requests(live_exchange):
    """CONN_MAX_AGE=0 would close it after each request; this thread serves every fast request, so a working
    connection is kept (a new one costs ~1.7 ms on SQLite), and only a broken one is let go (the test below)."""
    assert connections[DEFAULT_DB_ALIAS].settings_dict["CONN_MAX_AGE"] == 0  # the site's setting
    with serving() as base_url:
        assert answered_a_quote(call_quote(base_url, fresh_key()))
        first = sync_thread_connection_id()
        assert first is not None
        assert answered_a_quote(call_quote(base_url, fresh_key()))  # a new key: read on the same connection
        assert sync_thread_connection_id() == first


@on_postgresql
def test_a_connection_the_database_ended_costs_the_fast_lane_one_request_at_most(live_exchange):
    with serving() as base_url, persistent_connections():
        assert answered_a_quote(call_quote(base_url, fresh_key()))
        assert sync_thread_holds_a_connection()

        # The caller's token is read (not yet cached) on the connection PostgreSQL ended.
        end_the_sync_threads_session()
        refused = call_quote(base_url, fresh_key())
        assert refused_as_unavailable(refused), refused.text
        known_key = fresh_key()
        recovered = call_quote(base_url, known_key)  # the connection was let go: the next request connects again
        assert answered_a_quote(recovered), recovered.text

        # The server's definition is read (the serving cache emptied) with the caller known: the same, once.
        end_the_sync_threads_session()
        servers.clear()
        refused = call_quote(base_url, known_key)
        assert refused_as_unavailable(refused), refused.text
        recovered = call_quote(base_url, known_key)
        assert answered_a_quote(recovered), recovered.text
