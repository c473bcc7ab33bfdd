"""Django admin for admins: names in plain English, records of what happened read-only, every row named."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client
from django.utils import timezone

from health.models import AlertRule, NotificationChannel, NotificationDelivery, Silence
from registry.models import CallRecord, Capability, CapabilityKind, CapabilitySnapshot, Server, Transport

pytestmark = pytest.mark.django_db


@pytest.fixture
def recorded(db) -> dict[str, object]:
    server = Server.objects.create(name="exchange-alpha", transport=Transport.HTTP, url="http://127.0.0.1:9/mcp")
    now = timezone.now()
    snapshot = CapabilitySnapshot.objects.create(
        server=server, discovered_at=now, last_confirmed_at=now, protocol_version="2025-11-25", content_hash="h"
    )
    capability = Capability.objects.create(
        server=server, snapshot=snapshot, kind=CapabilityKind.TOOL, name="get_quote", identifier="get_quote"
    )
    call = CallRecord.objects.create(
        server=server, operation="tools/call", target_name="get_quote", started_at=now, latency_ms=3.0, ok=True
    )
    return {"server": server, "snapshot": snapshot, "capability": capability, "call": call}


def _admin(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_the_admin_says_capabilities_and_notification_deliveries(admin_user):
    index = _admin(admin_user).get("/admin/").content.decode()

    assert "Capabilities" in index and "Capabilitys" not in index
    assert "Notification deliveries" in index and "Notification deliverys" not in index


def test_call_records_and_capabilities_are_an_audit_trail_nobody_edits(admin_user, recorded):
    client = _admin(admin_user)
    for model, row in (
        ("capability", recorded["capability"]),
        ("capabilitysnapshot", recorded["snapshot"]),
        ("callrecord", recorded["call"]),
    ):
        base = f"/admin/registry/{model}/"
        assert client.get(base).status_code == 200
        assert client.get(f"{base}add/").status_code == 403
        change = client.get(f"{base}{row.pk}/change/")
        assert change.status_code == 200 and 'name="_save"' not in change.content.decode()  # view only
        assert client.post(f"{base}{row.pk}/change/", {}).status_code == 403
        assert client.post(f"{base}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Capability.objects.count() == CapabilitySnapshot.objects.count() == CallRecord.objects.count() == 1


def test_the_server_list_keeps_to_a_few_columns_and_pages(admin_user, recorded):
    server_admin = admin.site._registry[Server]

    assert len(server_admin.list_display) <= 6 and server_admin.list_per_page <= 100
    page = _admin(admin_user).get("/admin/registry/server/").content.decode()
    assert "exchange-alpha" in page


def test_every_alerting_row_has_a_name(recorded):
    rule = AlertRule.objects.create(name="server down", kind="down", severity="critical")
    until = timezone.now() + timedelta(hours=1)
    silence = Silence.objects.create(rule=rule, server=recorded["server"], starts_at=timezone.now(), ends_at=until)
    channel = NotificationChannel.objects.create(name="ops hook", kind="webhook", url="http://127.0.0.1:9/hook")
    delivery = NotificationDelivery.objects.create(channel=channel, rule=rule, payload={}, next_attempt_at=until)

    assert str(silence) == f"silence of server down on exchange-alpha until {until:%Y-%m-%d %H:%M}"
    assert str(delivery) == f"ops hook #{delivery.pk}: pending"
    assert "object (" not in str(Silence.objects.create(starts_at=timezone.now(), ends_at=until))
