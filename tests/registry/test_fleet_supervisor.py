"""The fleet supervisor keeps real sessions in line with the registry and writes back what it sees."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

from exchange_fleet import launcher
from registry.connections.processes import child_pids
from registry.events import FLEET_GROUP
from registry.fleet import CALL_OUTCOMES, FleetSupervisor, fleet_runtime
from registry.models import CallRecord, CapabilitySnapshot, Server, ServerStatus
from registry.services import server_create, server_update

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(condition: Callable[[], object], timeout: float = 20.0, step: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def start_http_exchange(port: int) -> subprocess.Popen[bytes]:
    return launcher.start_http_exchange("alpha", port, quiet=True)


@pytest.fixture
def http_exchange() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    port = launcher.free_port()
    processes = [start_http_exchange(port)]
    yield port, processes
    for process in processes:
        launcher.stop_process(process)


@pytest.fixture
def supervisor(settings) -> FleetSupervisor:
    settings.MCP_RECONNECT_INITIAL_SECONDS = 0.2
    settings.MCP_RECONNECT_MAX_SECONDS = 1.0
    CALL_OUTCOMES.drain()
    return FleetSupervisor(runtime=fleet_runtime(), probe_interval_seconds=0.0)


@pytest.fixture
def fleet_events() -> Iterator[Callable[[], list[dict]]]:
    """Everything published to the fleet group, received by a listener on one long-lived loop (as a consumer is)."""
    layer = get_channel_layer()
    received: list[dict] = []
    ready, stop = threading.Event(), threading.Event()

    async def listen() -> None:
        channel = await layer.new_channel()
        await layer.group_add(FLEET_GROUP, channel)
        ready.set()
        while not stop.is_set():
            try:
                received.append(await asyncio.wait_for(layer.receive(channel), timeout=0.2))
            except TimeoutError:
                continue
        await layer.group_discard(FLEET_GROUP, channel)

    listener = threading.Thread(target=asyncio.run, args=(listen(),))
    listener.start()
    assert ready.wait(10)
    yield lambda: (time.sleep(0.3), list(received))[1]
    stop.set()
    listener.join(10)


def test_it_brings_servers_online_discovers_them_and_records_calls(supervisor, http_exchange, fleet_events):
    port, _ = http_exchange
    server = server_create(name="alpha-http", transport="http", url=f"http://127.0.0.1:{port}/mcp")

    assert supervisor.step_reconcile() is True
    wait_for(lambda: Server.objects.get(pk=server.pk).status == ServerStatus.ONLINE, step=supervisor.step_statuses)
    server.refresh_from_db()
    assert server.protocol_version == "2026-07-28"
    assert CapabilitySnapshot.objects.filter(server=server).count() == 1
    assert server.capabilities.filter(kind="tool", name="get_quote").exists()
    assert {"server": "alpha-http", "status": "online"}.items() <= fleet_events()[-1].items()

    runtime = supervisor.runtime
    result = runtime.run(runtime.hub.call_tool(str(server.pk), "get_quote", {"symbol": "BTC-USD"}))
    assert result.structured_content["bid"] < result.structured_content["ask"]
    failed = runtime.run(runtime.hub.call_tool(str(server.pk), "get_quote", {"symbol": "NOPE-USD"}))
    assert failed.is_error

    supervisor.step_probe(time.monotonic())
    assert supervisor.step_flush_calls() is True
    calls = CallRecord.objects.filter(server=server)
    tool_calls = calls.filter(operation="tools/call", target_name="get_quote")
    assert tool_calls.filter(ok=True).count() == 1
    assert tool_calls.filter(ok=False, error_kind="tool_error").count() == 1
    assert calls.filter(operation="probe", ok=True).exists()
    assert all(record.latency_ms > 0 for record in calls)
    assert supervisor.step_flush_calls() is False


def test_a_server_that_dies_goes_offline_and_comes_back_online(supervisor, http_exchange, fleet_events):
    port, processes = http_exchange
    server = server_create(name="alpha-http", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    supervisor.step_reconcile()
    wait_for(lambda: Server.objects.get(pk=server.pk).status == ServerStatus.ONLINE, step=supervisor.step_statuses)

    processes[0].kill()
    processes[0].wait()

    def probe_and_record() -> None:
        # An idle Streamable HTTP session has no open stream: only a request (the probe) finds the server gone.
        supervisor.step_probe(time.monotonic())
        supervisor.step_statuses()

    wait_for(lambda: Server.objects.get(pk=server.pk).status == ServerStatus.OFFLINE, step=probe_and_record)
    server.refresh_from_db()
    assert server.status_reason and server.last_error
    assert any(event.get("status") == "offline" for event in fleet_events())

    processes.append(start_http_exchange(port))
    wait_for(lambda: Server.objects.get(pk=server.pk).status == ServerStatus.ONLINE, step=supervisor.step_statuses)
    assert fleet_events()[-1]["status"] == "online"


def test_disabling_or_deleting_a_server_closes_its_session_and_stops_its_process(supervisor):
    alpha = server_create(
        name="alpha",
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha"],
        cwd=str(settings.BASE_DIR),
    )
    beta = server_create(
        name="beta",
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "beta"],
        cwd=str(settings.BASE_DIR),
    )
    supervisor.step_reconcile()
    wait_for(lambda: Server.objects.filter(status=ServerStatus.ONLINE).count() == 2, step=supervisor.step_statuses)
    children = child_pids()
    assert len(children) >= 2

    server_update(server=alpha, enabled=False)
    beta.delete()
    assert supervisor.step_reconcile() is True
    assert supervisor.runtime.hub.statuses() == {}
    wait_for(lambda: not (children & child_pids()), timeout=10)
    assert Server.objects.get(pk=alpha.pk).status == ServerStatus.DISABLED
    assert supervisor.step_reconcile() is False


def test_a_connected_server_that_cannot_list_is_degraded_until_discovery_works(supervisor, fleet_events):
    # An outage for the first seconds: the session comes up (discover/initialize still answer) but every list
    # call fails, so the server is reachable yet unusable.
    server = server_create(
        name="delta",
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha", "--outage", "0:4"],
        cwd=str(settings.BASE_DIR),
    )
    supervisor.step_reconcile()
    wait_for(lambda: Server.objects.get(pk=server.pk).status == ServerStatus.DEGRADED, step=supervisor.step_statuses)
    server.refresh_from_db()
    assert "MCP server 'delta'" in server.status_reason and "outage" in server.status_reason
    assert not CapabilitySnapshot.objects.filter(server=server).exists()

    wait_for(lambda: Server.objects.get(pk=server.pk).status == ServerStatus.ONLINE, step=supervisor.step_statuses)
    assert CapabilitySnapshot.objects.filter(server=server).count() == 1
    statuses = [event["status"] for event in fleet_events() if event.get("server") == "delta"]
    assert "degraded" in statuses and statuses[-1] == "online"
