"""What the registry announces, and when: every change to the servers once it is committed (API, import and admin
alike, never for a change rolled back), an operator's status change on the request thread at commit, and a listener
that fails does not keep the others from hearing."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import datetime

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from registry import announcements
from registry.announcements import RegistryListener, StatusTransition
from registry.models import Server, ServerStatus
from registry.services import server_create, server_delete, server_update
from registry.transfer import registry_export

pytestmark = pytest.mark.django_db(transaction=True)


class Heard(RegistryListener):
    def __init__(self) -> None:
        self.changes = 0
        self.statuses: list[tuple[StatusTransition, str]] = []
        self.seen: list[dict[str, datetime]] = []

    def registry_changed(self) -> None:
        self.changes += 1

    def status_changed(self, transition: StatusTransition) -> None:
        self.statuses.append((transition, threading.current_thread().name))

    def servers_seen(self, seen: Mapping[str, datetime]) -> None:
        self.seen.append(dict(seen))


@pytest.fixture
def heard() -> Iterator[Heard]:
    listener = Heard()
    announcements.connect(listener)
    yield listener
    announcements.disconnect(listener)


def http_server(name: str = "alpha") -> dict:
    return {"name": name, "transport": "http", "url": "http://127.0.0.1:9/mcp"}


def test_create_update_and_delete_are_announced_when_they_commit_not_before(heard):
    with transaction.atomic():
        server = server_create(**http_server())
        assert heard.changes == 0  # still inside the transaction: the fleet must not look for it yet
    assert heard.changes == 1
    with transaction.atomic():
        server_update(server=server, priority=5)
        assert heard.changes == 1
    assert heard.changes == 2
    with transaction.atomic():
        server_delete(server=server)
        assert heard.changes == 2
    assert heard.changes == 3


def test_a_change_rolled_back_is_never_announced(heard):
    with pytest.raises(RuntimeError), transaction.atomic():
        server_create(**http_server())
        raise RuntimeError("the request failed after the write")
    assert heard.changes == 0 and not Server.objects.exists()


def test_the_api_and_import_announce_the_same_way(heard, admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    created = client.post("/api/servers/?discover=false", {**http_server(), "enabled": False}, format="json")
    assert created.status_code == 201 and heard.changes == 1
    assert client.patch("/api/servers/alpha/", {"priority": 7}, format="json").status_code == 200
    assert heard.changes == 2

    document = registry_export(include_secrets=True)
    document["servers"][0]["priority"] = 9
    dry = client.post("/api/registry/import/?dry_run=true", document, format="json")
    assert dry.status_code == 200 and heard.changes == 2  # a dry run writes nothing, so tells nothing
    assert client.post("/api/registry/import/", document, format="json").status_code == 200
    assert heard.changes == 3

    assert client.delete("/api/servers/alpha/").status_code == 204
    assert heard.changes == 4


def test_disabling_is_announced_on_the_request_thread_once_committed(heard):
    server = server_create(**http_server())
    with transaction.atomic():
        server_update(server=server, enabled=False, by="ada")
        assert heard.statuses == []
    ((transition, thread),) = heard.statuses
    assert (transition.name, transition.to_status, transition.reason) == (
        "alpha",
        ServerStatus.DISABLED,
        "disabled by ada",
    )
    assert thread == threading.current_thread().name


def test_a_failing_listener_does_not_silence_the_others(heard):
    class Broken(RegistryListener):
        def registry_changed(self) -> None:
            raise RuntimeError("listener bug")

    broken = Broken()
    announcements.connect(broken)
    try:
        server_create(**http_server())
    finally:
        announcements.disconnect(broken)
    assert heard.changes == 1


def test_servers_seen_is_not_announced_for_an_empty_batch(heard):
    announcements.servers_seen({})
    assert heard.seen == []
