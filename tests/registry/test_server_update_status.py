"""An edit of a server's definition is no status writer: health decides the status, and enabling or disabling goes
through the same compare-and-set as every status write."""

from __future__ import annotations

import pytest

from registry.models import Server, ServerStatus, StatusChange
from registry.services import server_create, server_status_transition, server_update

pytestmark = pytest.mark.django_db


def test_an_edit_made_from_a_stale_instance_keeps_the_status_health_wrote_meanwhile():
    server = server_create(name="edited", transport="http", url="http://127.0.0.1:9/mcp")
    stale = Server.objects.get(pk=server.pk)  # an edit form read before the check below
    server_status_transition(server_id=server.pk, status=ServerStatus.ONLINE, reason="healthy", source="health")

    server_update(server=stale, description="a new description", by="oscar")

    fresh = Server.objects.get(pk=server.pk)
    assert fresh.description == "a new description"
    assert (fresh.status, fresh.status_reason) == (ServerStatus.ONLINE, "healthy")


def test_disabling_and_enabling_are_status_transitions_with_history():
    server = server_create(name="toggled", transport="http", url="http://127.0.0.1:9/mcp")
    server_status_transition(server_id=server.pk, status=ServerStatus.ONLINE, reason="healthy", source="health")
    server.refresh_from_db()

    server_update(server=server, enabled=False, by="oscar")
    assert (server.status, server.status_reason) == (ServerStatus.DISABLED, "disabled by oscar")
    server_update(server=server, enabled=True, by="vera")
    server.refresh_from_db()
    assert server.enabled and (server.status, server.status_reason) == (
        ServerStatus.UNKNOWN,
        "enabled by vera; connecting",
    )
    history = list(StatusChange.objects.filter(server=server).order_by("at", "id").values_list("to_status", "source"))
    assert history == [("online", "health"), ("disabled", "oscar"), ("unknown", "vera")]
