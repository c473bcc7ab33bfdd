"""The fleet supervisor over real sessions: statuses follow the servers, nothing stalls it and nothing stops it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from exchange_fleet import launcher
from fleet.calls import fleet_runtime
from mcp_client import CallOutcome
from mcp_client.processes import child_pids, is_alive
from registry import announcements
from registry.announcements import RegistryListener, StatusTransition
from registry.models import CallRecord, CapabilitySnapshot, Server, ServerStatus, StatusChange
from registry.services import (
    call_outcomes_record,
    call_records_prune,
    server_create,
    server_delete,
    server_update,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WELL_BEHAVED = str(settings.BASE_DIR / "tests" / "mcp_servers" / "well_behaved.py")


def transitions(received: list[dict], server: str) -> list[str]:
    """The statuses announced for a server, without the repeats that only update the reason."""
    statuses: list[str] = []
    for event in received:
        if event.get("type") == "fleet.status" and event["name"] == server and statuses[-1:] != [event["status"]]:
            statuses.append(event["status"])
    return statuses


def status_of(name: str) -> str:
    return Server.objects.filter(name=name).values_list("status", flat=True).first() or ""


def exchange(name: str, *extra: str) -> Server:
    return server_create(
        name=name,
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha", *extra],
        cwd=str(settings.BASE_DIR),
    )


def stdio_pid(supervisor, name: str) -> int:
    pid = supervisor.hub.statuses()[name].pid
    assert pid is not None
    return pid


@pytest.fixture
def http_exchange() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    port = launcher.free_port()
    processes = [launcher.start_http_exchange("alpha", port, quiet=True)]
    yield port, processes
    for process in processes:
        launcher.stop_process(process)


def _on_fleet_loop() -> bool:
    try:
        return asyncio.get_running_loop() is fleet_runtime().loop
    except RuntimeError:
        return False


class AnnouncementRecorder(RegistryListener):
    def __init__(self) -> None:
        self.received: list[dict] = []

    def status_changed(self, transition: StatusTransition) -> None:
        self.received.append(
            {
                "type": "fleet.status",
                "name": transition.name,
                "status": transition.to_status,
                "reason": transition.reason,
                "on_fleet_loop": _on_fleet_loop(),
            }
        )

    def servers_seen(self, seen) -> None:
        self.received.append({"type": "fleet.seen", "servers": dict(seen), "on_fleet_loop": _on_fleet_loop()})


@pytest.fixture
def fleet_events() -> Iterator[Callable[[], list[dict]]]:
    """What the registry announced (which the pipeline turns into fleet.status / fleet.seen events)."""
    recorder = AnnouncementRecorder()
    announcements.connect(recorder)
    yield lambda: list(recorder.received)
    announcements.disconnect(recorder)


def test_it_brings_servers_online_discovering_each_session_exactly_once(live_fleet, http_exchange, fleet_events):
    port, _ = http_exchange
    server = server_create(name="alpha-http", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    live_fleet.request_reconcile()

    wait_for(lambda: status_of("alpha-http") == ServerStatus.ONLINE, what="online")
    server.refresh_from_db()
    assert server.protocol_version == "2026-07-28"
    assert server.status_reason.startswith("connected")
    assert server.capabilities.filter(kind="tool", name="get_quote").exists()
    wait_for(lambda: any(e.get("name") == "alpha-http" and e.get("status") == "online" for e in fleet_events()))
    history = list(StatusChange.objects.filter(server=server).values_list("from_status", "to_status", "source"))
    assert history == [("unknown", "online", "health")]  # the supervisor observed it; health, the decider, wrote it

    # Checks keep running; the session is discovered once, however many checks and reconciles pass.
    wait_for(lambda: CallRecord.objects.filter(server=server, operation="discover").exists(), what="recorded")
    for _ in range(3):
        live_fleet.runtime.run(live_fleet.supervisor.reconcile_once())
    wait_for(lambda: any(e.get("type") == "fleet.seen" for e in fleet_events()), what="a last-seen event")
    assert CallRecord.objects.filter(server=server, operation="discover").count() == 1
    # Health decided and the recorder saw: both announced on the fleet loop, not from a database thread.
    assert all(event["on_fleet_loop"] for event in fleet_events())
    assert CapabilitySnapshot.objects.filter(server=server).count() == 1


def test_a_killed_http_server_is_offline_within_two_seconds_and_comes_back(live_fleet, http_exchange, fleet_events):
    port, processes = http_exchange
    server_create(name="alpha-http", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    live_fleet.request_reconcile()
    wait_for(lambda: status_of("alpha-http") == ServerStatus.ONLINE, what="online")

    processes[0].kill()
    processes[0].wait()
    # The session's notification stream breaks, the connection checks at once: no waiting for a probe round.
    wait_for(lambda: status_of("alpha-http") == ServerStatus.OFFLINE, timeout=2.0, what="offline within 2 s")
    reason = Server.objects.get(name="alpha-http").status_reason
    assert "next attempt" not in reason and reason

    processes.append(launcher.start_http_exchange("alpha", port, quiet=True))
    wait_for(lambda: status_of("alpha-http") == ServerStatus.ONLINE, what="back online")
    wait_for(
        lambda: transitions(fleet_events(), "alpha-http")[-3:] == ["online", "offline", "online"],
        what="the dashboards told of each change",
    )


def test_a_hung_server_does_not_delay_the_others_and_goes_offline_itself(live_fleet):
    for name in ("steady", "frozen", "victim"):
        exchange(name)
    live_fleet.request_reconcile()
    wait_for(lambda: Server.objects.filter(status=ServerStatus.ONLINE).count() == 3, what="three online")
    frozen = stdio_pid(live_fleet, "frozen")
    os.kill(frozen, signal.SIGSTOP)
    try:
        # While one server hangs, another one's death is still seen at once.
        os.kill(stdio_pid(live_fleet, "victim"), signal.SIGKILL)
        wait_for(lambda: status_of("victim") == ServerStatus.OFFLINE, timeout=3.0, what="victim offline")
        # The hung one answers no check: pending, then offline once health's retry budget (2) is spent.
        wait_for(lambda: status_of("frozen") == ServerStatus.OFFLINE, timeout=15.0, what="frozen offline")
        reason = Server.objects.get(name="frozen").status_reason
        assert "3 checks in a row failed" in reason and "not answering" in reason
        changes = list(
            StatusChange.objects.filter(server__name="frozen").order_by("at").values_list("to_status", flat=True)
        )
        assert changes[-2:] == ["pending", "offline"]
        assert status_of("steady") == ServerStatus.ONLINE
    finally:
        os.kill(frozen, signal.SIGCONT)
    wait_for(lambda: status_of("frozen") == ServerStatus.ONLINE, timeout=10.0, what="frozen back online")
    wait_for(lambda: status_of("victim") == ServerStatus.ONLINE, timeout=10.0, what="victim reconnected")


def test_a_server_deleted_while_being_discovered_leaves_the_supervisor_working(live_fleet, monkeypatch):
    monkeypatch.setenv("LIST_DELAY_SECONDS", "3")
    slow = server_create(name="slow-lister", transport="stdio", command=sys.executable, args=[WELL_BEHAVED])
    live_fleet.request_reconcile()
    wait_for(lambda: "slow-lister" in live_fleet.hub.statuses() and live_fleet.hub.statuses()["slow-lister"].connected)
    pid = stdio_pid(live_fleet, "slow-lister")
    server_delete(server=slow)  # its discovery is still waiting for tools/list
    live_fleet.request_reconcile()
    wait_for(lambda: "slow-lister" not in live_fleet.hub.statuses(), what="session closed")
    wait_for(lambda: not is_alive(pid), timeout=10, what="child stopped")

    monkeypatch.setenv("LIST_DELAY_SECONDS", "0")
    exchange("after-the-delete")
    live_fleet.request_reconcile()
    wait_for(lambda: status_of("after-the-delete") == ServerStatus.ONLINE, what="the next server still served")
    assert live_fleet.loop_errors == 0


def test_an_unexpected_exception_in_a_step_does_not_stop_the_loop(live_fleet, monkeypatch):
    from health import monitor as decider_module

    real = decider_module.server_status_transition
    failures = {"left": 1}

    def flaky(**kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("injected: the database went away for a moment")
        return real(**kwargs)

    monkeypatch.setattr(decider_module, "server_status_transition", flaky)
    exchange("alpha")
    live_fleet.request_reconcile()
    # The first write (the decider's, within the supervisor's discovery step) fails; the supervisor logs it, goes on,
    # and the status still arrives.
    wait_for(lambda: live_fleet.loop_errors >= 1, what="the injected failure")
    os.kill(stdio_pid(live_fleet, "alpha"), signal.SIGKILL)  # a new session makes a new discovery and status
    wait_for(lambda: status_of("alpha") == ServerStatus.ONLINE, timeout=20, what="online after the failure")
    exchange("beta")
    live_fleet.request_reconcile()
    wait_for(lambda: status_of("beta") == ServerStatus.ONLINE, what="later servers still served")


def test_a_failing_discovery_is_retried_with_a_backoff_not_every_second(live_fleet, fleet_events):
    # Every request fails for the first 4 s (a simulated outage) while the session stays up: the first discovery
    # fails and the supervisor retries it with a backoff. Health, the decider, probes meanwhile and the outage fails
    # those probes too, so which comes first decides the status on the way: degraded (the listing failed first; a
    # later failed probe takes it to pending and offline) or pending (a probe failed first: a listing that fails
    # while nothing answers does not lift it to degraded). Both end online once the server answers again.
    exchange("delta", "--outage", "0:4")
    live_fleet.request_reconcile()

    def failed_discoveries() -> int:
        return CallRecord.objects.filter(server__name="delta", operation="discover", ok=False).count()

    wait_for(lambda: failed_discoveries() >= 1, what="a failed discovery")
    assert not CapabilitySnapshot.objects.filter(server__name="delta").exists()
    wait_for(
        lambda: (
            status_of("delta") == ServerStatus.ONLINE
            and CapabilitySnapshot.objects.filter(server__name="delta").exists()
        ),
        what="online and discovered once the server answers",
    )
    assert 1 <= failed_discoveries() <= 3  # 2 s, 4 s...: a handful of tries in 4 s, not one a second
    changes = list(StatusChange.objects.filter(server__name="delta").order_by("at").values_list("to_status", "reason"))
    statuses = [status for status, _ in changes]
    assert set(statuses) <= {"degraded", "pending", "offline", "online"} and statuses[-1] == "online"
    # The discovery retries update the reason in place: they are no new transitions.
    assert statuses.count("degraded") <= 1
    for status, reason in changes:
        if status == "degraded":
            assert "listing its capabilities failed" in reason and "MCP server 'delta'" in reason
    events = [e["status"] for e in fleet_events() if e.get("name") == "delta" and "status" in e]
    assert events.count("degraded") <= 1 and events[-1] == "online"


def test_disabling_or_deleting_closes_sessions_and_stops_processes(live_fleet):
    alpha, beta = exchange("alpha"), exchange("beta")
    live_fleet.request_reconcile()
    wait_for(lambda: Server.objects.filter(status=ServerStatus.ONLINE).count() == 2, what="both online")
    pids = {stdio_pid(live_fleet, "alpha"), stdio_pid(live_fleet, "beta")}

    server_update(server=alpha, enabled=False, by="oscar")
    server_delete(server=beta)
    live_fleet.request_reconcile()
    wait_for(lambda: live_fleet.hub.statuses() == {}, what="sessions closed")
    wait_for(lambda: not (pids & child_pids()), timeout=10, what="children gone")
    alpha.refresh_from_db()
    assert alpha.status == ServerStatus.DISABLED and alpha.status_reason == "disabled by oscar"
    assert StatusChange.objects.filter(server=alpha, to_status="disabled", source="oscar").exists()


def test_a_failed_discover_now_does_not_leave_a_working_server_offline(live_fleet, admin_api, http_exchange):
    port, processes = http_exchange
    server_create(name="alpha-http", transport="http", url=f"http://127.0.0.1:{port}/mcp")
    live_fleet.request_reconcile()
    wait_for(lambda: status_of("alpha-http") == ServerStatus.ONLINE, what="online")
    processes[0].kill()
    processes[0].wait()
    wait_for(lambda: status_of("alpha-http") == ServerStatus.OFFLINE, what="offline")
    assert admin_api.post("/api/servers/alpha-http/discover/").status_code == 502

    # Back up: "Discover now" retries at once instead of answering "in backoff", and the status follows.
    processes.append(launcher.start_http_exchange("alpha", port, quiet=True))
    response = admin_api.post("/api/servers/alpha-http/discover/")
    assert response.status_code == 200, response.json()
    wait_for(lambda: status_of("alpha-http") == ServerStatus.ONLINE, what="online again")


def test_a_batch_of_call_records_survives_a_server_deleted_meanwhile(db):
    kept, gone = exchange("kept"), exchange("gone")
    now = timezone.now()

    def outcome(server: str) -> CallOutcome:
        return CallOutcome(server, "tools/call", "get_quote", now, 3.0, True, caller="oscar", correlation_id="c-1")

    ids = {"kept": kept.pk, "gone": gone.pk}  # the supervisor's map still knows the deleted one
    server_delete(server=gone)
    assert call_outcomes_record([outcome("kept"), outcome("gone"), outcome("kept")], ids) == 2
    records = CallRecord.objects.filter(server=kept)
    assert records.count() == 2 and {(r.caller, r.correlation_id) for r in records} == {("oscar", "c-1")}


def test_call_records_are_pruned_by_age_in_batches(db):
    server = exchange("old-timer")
    now = timezone.now()
    CallRecord.objects.bulk_create(
        CallRecord(server=server, operation="probe", started_at=now - timedelta(days=age), latency_ms=1, ok=False)
        for age in [10] * 25 + [1] * 5
    )
    deleted = call_records_prune(older_than=now - timedelta(days=7), batch_size=10)
    assert deleted == 25 and CallRecord.objects.count() == 5
