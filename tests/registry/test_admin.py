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


@pytest.mark.django_db(transaction=True)
def test_disabling_a_server_in_the_admin_takes_effect_on_the_live_fleet(client, admin_user, live_fleet):
    import sys
    import time

    from django.conf import settings

    from registry.models import StatusChange

    server = server_create(
        name="exchange-alpha",
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha"],
        cwd=str(settings.BASE_DIR),
    )
    live_fleet.request_reconcile()
    deadline = time.monotonic() + 20
    while "exchange-alpha" not in live_fleet.hub.statuses() and time.monotonic() < deadline:
        time.sleep(0.05)
    client.force_login(admin_user)
    form = _form(
        name="exchange-alpha",
        transport="stdio",
        url="",
        command=sys.executable,
        args='["-m", "exchange_fleet", "serve", "--profile", "alpha"]',
        cwd=str(settings.BASE_DIR),
    )
    form.pop("enabled")  # an unticked checkbox
    response = client.post(f"/admin/registry/server/{server.pk}/change/", form)
    assert response.status_code == 302, response.content[:3000]
    server.refresh_from_db()
    assert server.status == "disabled" and server.status_reason == f"disabled by {admin_user.username}"
    assert StatusChange.objects.filter(server=server, to_status="disabled").exists()
    while "exchange-alpha" in live_fleet.hub.statuses() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "exchange-alpha" not in live_fleet.hub.statuses()  # the session was closed after the commit


def test_the_admin_form_refuses_what_the_api_refuses(logged_in_admin):
    for overrides, field_text in [
        ({"max_concurrency": "0"}, b"greater than or equal to 1"),
        ({"request_timeout_seconds": "-1"}, b"greater than or equal to 0.1"),
        ({"header_values": '{"Host": "evil.example"}'}, b"set by the transport itself"),
        ({"header_values": '{"": "x"}'}, b"A header name is empty"),
        ({"header_values": '{"X-Token": "a\\r\\nInjected: yes"}'}, b"printable ASCII"),
    ]:
        response = logged_in_admin.post("/admin/registry/server/add/", _form(**overrides))
        assert response.status_code == 200, overrides
        assert field_text in response.content, (overrides, response.content[-3000:])
    assert not Server.objects.exists()
