"""The live fleet socket, through the real ASGI stack: origin check, session auth, roles, snapshot and status events."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from orchestrator_site.asgi import application
from registry import events
from registry.events import fleet_seen_event, fleet_status_event, publish_async
from registry.models import Capability, CapabilityKind, CapabilitySnapshot, Server, ServerStatus, Transport

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_ORIGIN = b"http://127.0.0.1:8000"


def _session_cookie(user: User | None) -> str:
    """A real session, as the browser would carry it after logging in."""
    client = Client()
    if user is not None:
        client.force_login(user)
    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
    return f"{settings.SESSION_COOKIE_NAME}={cookie.value}" if cookie else ""


def _communicator(cookie: str, origin: bytes = GOOD_ORIGIN) -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, "/ws/fleet/", headers=headers)


@pytest.fixture
def exchange(db) -> Server:
    now = timezone.now()
    server = Server.objects.create(
        name="exchange-alpha",
        transport=Transport.HTTP,
        url="http://127.0.0.1:9101/mcp",
        server_type="exchange",
        status=ServerStatus.ONLINE,
        status_reason="ping 3 ms",
        protocol_version="2025-11-25",
        last_seen_at=now,
    )
    snapshot = CapabilitySnapshot.objects.create(
        server=server,
        discovered_at=now,
        last_confirmed_at=now,
        protocol_version="2025-11-25",
        tools=[{"name": "get_quote"}],
        content_hash="h1",
    )
    Capability.objects.create(
        server=server, snapshot=snapshot, kind=CapabilityKind.TOOL, name="get_quote", identifier="get_quote"
    )
    return server


@pytest.fixture
def viewer_cookie(viewer_user) -> str:
    return _session_cookie(viewer_user)


async def test_an_anonymous_socket_is_refused(exchange):
    communicator = _communicator(await sync_to_async(_session_cookie)(None))

    connected, _ = await communicator.connect()

    assert not connected
    await communicator.disconnect()


async def test_an_outsider_socket_is_refused(outsider_user, exchange):
    communicator = _communicator(await sync_to_async(_session_cookie)(outsider_user))

    connected, _ = await communicator.connect()

    assert not connected
    await communicator.disconnect()


async def test_a_viewer_receives_the_fleet_snapshot_on_connect(viewer_cookie, exchange):
    communicator = _communicator(viewer_cookie)

    connected, _ = await communicator.connect()
    message = await communicator.receive_json_from(timeout=5)

    assert connected
    assert message["type"] == "fleet.snapshot"
    (row,) = message["servers"]
    assert row["name"] == "exchange-alpha"
    assert row["status"] == "online"
    assert row["status_reason"] == "ping 3 ms"
    assert row["protocol_version"] == "2025-11-25"
    assert row["last_seen_at"] == exchange.last_seen_at.isoformat()
    assert row["counts"] == {"tools": 1, "resources": 0, "resource_templates": 0, "prompts": 0}
    await communicator.disconnect()


async def test_a_published_status_change_reaches_a_connected_viewer(viewer_cookie, exchange):
    communicator = _communicator(viewer_cookie)
    await communicator.connect()
    await communicator.receive_json_from(timeout=5)  # the snapshot
    seen_at = timezone.now()

    await publish_async(
        fleet_status_event(
            name="exchange-alpha",
            status=ServerStatus.DEGRADED,
            status_reason="p95 latency 900 ms",
            last_seen_at=seen_at,
            protocol_version="2025-11-25",
        )
    )
    message = await communicator.receive_json_from(timeout=5)

    assert message == {
        "type": "fleet.status",
        "server": "exchange-alpha",
        "status": "degraded",
        "status_reason": "p95 latency 900 ms",
        "last_seen_at": seen_at.isoformat(),
        "protocol_version": "2025-11-25",
    }
    await communicator.disconnect()


async def test_an_event_published_from_another_thread_is_handed_to_the_sockets_loop(viewer_cookie, exchange):
    """The supervisor publishes from the fleet thread; the in-memory layer's queues belong to the sockets' loop. The
    event must be delivered on that loop (a cross-thread put once sat unnoticed for 4.8 s)."""
    communicator = _communicator(viewer_cookie)
    await communicator.connect()
    await communicator.receive_json_from(timeout=5)  # the snapshot
    seen_at = timezone.now()
    events.bind_delivery_loop(asyncio.get_running_loop())
    try:
        await asyncio.to_thread(events.publish, fleet_seen_event({"exchange-alpha": seen_at}))
        # Well under the delay a lost wake-up causes: the loop is idle apart from this socket.
        message = await communicator.receive_json_from(timeout=2)
    finally:
        events.bind_delivery_loop(None)
    assert message == {"type": "fleet.seen", "servers": {"exchange-alpha": seen_at.isoformat()}}
    await communicator.disconnect()


async def test_a_socket_from_a_foreign_origin_is_refused(viewer_cookie, exchange):
    communicator = _communicator(viewer_cookie, origin=b"http://evil.example")

    connected, _ = await communicator.connect()

    assert not connected
    await communicator.disconnect()
