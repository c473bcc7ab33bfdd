"""Django admin for servers: secrets are write-only there too, and the same transport rules apply."""

from __future__ import annotations

import pytest

from registry.models import Server
from registry.services import server_create

pytestmark = pytest.mark.django_db

SECRET = "admin-side-secret-9876"


@pytest.fixture
def logged_in_admin(client, admin_user):
    client.force_login(admin_user)
    return client


def _form(**overrides) -> dict:
    data = {
        "name": "remote",
        "transport": "http",
        "url": "http://127.0.0.1:9/mcp",
        "args": "[]",
        "server_type": "generic",
        "priority": "100",
        "enabled": "on",
        "metadata": "{}",
        "request_timeout_seconds": "10",
        "max_concurrency": "8",
        "status": "unknown",
        "env_values": "",
        "header_values": "",
        "capabilities-TOTAL_FORMS": "0",
        "capabilities-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_the_change_page_shows_secret_names_but_never_values(logged_in_admin):
    server = server_create(
        name="remote", transport="http", url="http://127.0.0.1:9/mcp", headers={"Authorization": SECRET}
    )
    page = logged_in_admin.get(f"/admin/registry/server/{server.pk}/change/")
    assert page.status_code == 200
    assert SECRET.encode() not in page.content
    assert b"Stored keys: Authorization" in page.content


def test_saving_without_typing_secrets_keeps_them(logged_in_admin):
    server = server_create(
        name="remote", transport="http", url="http://127.0.0.1:9/mcp", headers={"Authorization": SECRET}
    )
    response = logged_in_admin.post(f"/admin/registry/server/{server.pk}/change/", _form(priority="5"))
    assert response.status_code == 302, response.content[:2000]
    server.refresh_from_db()
    assert server.priority == 5
    assert server.headers == {"Authorization": SECRET}


def test_bad_secrets_and_bad_transports_are_refused_with_the_reason(logged_in_admin):
    response = logged_in_admin.post("/admin/registry/server/add/", _form(header_values="{not json"))
    assert response.status_code == 200
    assert b"Not valid JSON" in response.content
    response = logged_in_admin.post("/admin/registry/server/add/", _form(transport="stdio", url=""))
    assert b"A stdio server needs the command to run." in response.content
    assert not Server.objects.exists()


def test_people_who_are_not_staff_cannot_open_the_admin(client, operator_user):
    client.force_login(operator_user)
    response = client.get("/admin/registry/server/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
