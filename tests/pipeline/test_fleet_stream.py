"""The dashboard's live fleet: a snapshot with where to resume, then the registry's status writes arriving as
fleet.status events on /ws/events/ (through the registry's announcements, the bus and the channel layer)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from rest_framework.test import APIClient

from registry import announcements
from registry.models import Capability, CapabilityKind, CapabilitySnapshot, Server, ServerStatus, Transport
from registry.services import server_status_transition, server_update

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def exchange(transactional_db) -> Server:
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


def fleet_snapshot(user) -> dict:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/pipeline/fleet/")
    assert response.status_code == 200
    return response.json()


def test_the_snapshot_has_every_row_and_where_to_resume(exchange, viewer_user, outsider_user):
    body = fleet_snapshot(viewer_user)
    (row,) = body["servers"]
    assert row["name"] == "exchange-alpha" and row["status"] == "online" and row["status_reason"] == "ping 3 ms"
    assert row["last_seen_at"] == exchange.last_seen_at.isoformat()
    assert row["counts"] == {"tools": 1, "resources": 0, "resource_templates": 0, "prompts": 0}
    assert body["after"] == {"fleet.status": 0, "fleet.seen": 0}
    client = APIClient()
    client.force_authenticate(outsider_user)
    assert client.get("/api/pipeline/fleet/").status_code == 403


async def test_status_writes_reach_a_viewer_after_the_snapshot_without_a_gap(
    running_pipeline, exchange, browser_for, viewer_user, admin_user
):
    # A change made before the browser connects, after the page took its snapshot: replayed, not lost.
    snapshot = await sync_to_async(fleet_snapshot)(viewer_user)
    # Written and announced as the decider does it.
    transition = await sync_to_async(server_status_transition)(
        server_id=exchange.id, status=ServerStatus.DEGRADED, reason="p95 latency 900 ms", source="test"
    )
    announcements.status_changed(transition)
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send(
        {"type": "subscribe", "streams": ["fleet.status"], "after": {"fleet.status": snapshot["after"]["fleet.status"]}}
    )
    await browser.expect("subscribed")
    (degraded,) = await browser.events_until(lambda e: e["payload"]["status"] == "degraded")
    assert degraded["server"] == "exchange-alpha" and degraded["seq"] == snapshot["after"]["fleet.status"] + 1
    assert degraded["payload"]["status_reason"] == "p95 latency 900 ms"

    # A change made by an admin (disable) travels the same way, live.
    server = await sync_to_async(Server.objects.get)(name="exchange-alpha")
    await sync_to_async(server_update)(server=server, enabled=False, by="ada")
    (disabled,) = await browser.events_until(lambda e: e["payload"]["status"] == "disabled")
    assert disabled["payload"]["status_reason"] == "disabled by ada" and disabled["seq"] == degraded["seq"] + 1
    await browser.close()
