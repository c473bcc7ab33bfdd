"""Managing servers from the dashboard: "test connection" (API), the add/edit/import-export pages by role, the
server page's button row, and the role groups that `migrate` creates."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from exchange_fleet.launcher import free_port
from registry.models import Server
from registry.permissions import OPERATOR_GROUP, VIEWER_GROUP
from registry.services import server_create
from tests.exchanges import EXCHANGE_HOST

SECRET = "sk-test-connection-secret-9876"
TEST_CONNECTION = "/api/servers/test-connection/"


def _http(name: str = "zeta", url: str = "http://127.0.0.1:9/mcp", **extra) -> dict:
    return {"name": name, "transport": "http", "url": url, **extra}


# -- the role groups ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migrate_creates_the_operators_and_viewers_groups_once():
    Group.objects.filter(name__in=[OPERATOR_GROUP, VIEWER_GROUP]).delete()
    call_command("migrate", "registry", "0004", verbosity=0)
    call_command("migrate", "registry", verbosity=0)
    assert set(Group.objects.values_list("name", flat=True)) >= {OPERATOR_GROUP, VIEWER_GROUP}
    # Again, with the groups there (and someone in one): still one of each, members kept.
    call_command("migrate", "registry", "0004", verbosity=0)
    call_command("migrate", "registry", verbosity=0)
    assert Group.objects.filter(name=OPERATOR_GROUP).count() == 1
    assert Group.objects.filter(name=VIEWER_GROUP).count() == 1


# -- test connection ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_operator_tests_a_definition_over_the_real_protocol_and_nothing_is_saved(operator_api):
    url = EXCHANGE_HOST.fresh_exchange_url("--profile", "alpha", "--no-outages", "--error-rate", "0")
    response = operator_api.post(TEST_CONNECTION, _http(url=url, headers={"X-Api-Key": SECRET}), format="json")
    assert response.status_code == 200, response.json()
    report = response.json()
    assert report["ok"] is True
    assert report["protocol_version"]
    assert report["server_name"]
    assert report["counts"]["tools"] >= 5
    assert "get_quote" in report["tool_names"]
    assert report["elapsed_ms"] > 0
    assert SECRET not in response.content.decode()
    assert not Server.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_failed_connection_is_told_in_words_without_the_secret(operator_api):
    closed = f"http://127.0.0.1:{free_port()}/mcp"
    response = operator_api.post(TEST_CONNECTION, _http(url=closed, headers={"Authorization": SECRET}), format="json")
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is False
    assert report["error"] and "Traceback" not in report["error"]
    assert SECRET not in response.content.decode()
    assert report["elapsed_ms"] < 25_000


@pytest.mark.django_db
def test_test_connection_validates_and_refuses_as_a_create_would(operator_api, viewer_api, admin_api):
    bad_url = operator_api.post(TEST_CONNECTION, _http(url="not a url"), format="json")
    assert bad_url.status_code == 400 and "url" in bad_url.json()
    outside = operator_api.post(TEST_CONNECTION, _http(url="http://10.1.2.3/mcp"), format="json")
    assert outside.status_code == 400 and "OUTBOUND_ALLOWED_NETWORKS" in str(outside.json()["url"])
    bad_header = operator_api.post(TEST_CONNECTION, _http(headers={"Host": "x"}), format="json")
    assert bad_header.status_code == 400 and "headers" in bad_header.json()
    stdio = {"name": "clock", "transport": "stdio", "command": "mcp-server-time"}
    refused = operator_api.post(TEST_CONNECTION, stdio, format="json")
    assert refused.status_code == 403 and "stdio" in refused.json()["detail"]
    assert viewer_api.post(TEST_CONNECTION, _http(), format="json").status_code == 403
    unknown = admin_api.post(TEST_CONNECTION, _http(server="no-such-server"), format="json")
    assert unknown.status_code == 400 and "server" in unknown.json()


@pytest.mark.django_db
def test_stored_secrets_fill_in_only_for_their_own_endpoint(admin_api, operator_api):
    server_create(**_http(name="locked", headers={"Authorization": SECRET}))
    # Pointed elsewhere, the stored header must be given again (or dropped), as an update requires.
    moved = admin_api.post(
        TEST_CONNECTION, _http(name="locked", url="http://127.0.0.1:8/mcp", server="locked"), format="json"
    )
    assert moved.status_code == 400 and "headers" in moved.json()
    # An operator may not use an admin's stored secrets at all (nor change that server).
    refused = operator_api.post(TEST_CONNECTION, _http(name="locked", server="locked"), format="json")
    assert refused.status_code == 403 and "holds secrets" in refused.json()["detail"]


@pytest.mark.django_db
def test_test_connection_is_in_the_openapi_schema_with_its_bodies(admin_api):
    schema = admin_api.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/servers/test-connection/"]["post"]
    request_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    response_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    request_body = schema["components"]["schemas"][request_ref.rsplit("/", 1)[1]]
    response_body = schema["components"]["schemas"][response_ref.rsplit("/", 1)[1]]
    assert {"url", "headers", "transport", "server"} <= set(request_body["properties"])
    assert {"ok", "protocol_version", "server_name", "counts", "error"} <= set(response_body["properties"])


# -- pages ----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_add_form_offers_stdio_to_admins_only(client, operator_user, admin_user, viewer_user):
    client.force_login(operator_user)
    page = client.get("/add-server/").content.decode()
    assert 'value="http"' in page and 'value="sse"' in page
    assert 'value="stdio"' not in page and 'id="field-command"' not in page
    client.force_login(admin_user)
    page = client.get("/add-server/").content.decode()
    assert 'value="stdio"' in page and 'id="field-command"' in page
    client.force_login(viewer_user)
    assert client.get("/add-server/").status_code == 403
    assert client.get("/import-export/").status_code == 403


@pytest.mark.django_db
def test_the_edit_form_names_stored_secrets_but_never_shows_them(client, admin_user, operator_user):
    server_create(**_http(name="keyed", headers={"X-Api-Key": SECRET}, tags=["prod"]))
    client.force_login(admin_user)
    page = client.get("/servers/keyed/edit/").content.decode()
    assert "X-Api-Key" in page and "set, hidden" in page
    assert SECRET not in page
    assert 'id="locked-reason"' not in page
    client.force_login(operator_user)
    page = client.get("/servers/keyed/edit/").content.decode()
    assert SECRET not in page
    # The API would refuse this operator: the form says why and is locked.
    assert 'id="locked-reason"' in page and "holds secrets" in page
    assert client.get("/servers/nobody/edit/").status_code == 404


@pytest.mark.django_db
def test_the_server_page_offers_its_buttons_by_role(client, operator_user, viewer_user):
    server_create(**_http(name="plain"))
    server_create(**_http(name="keyed", headers={"X-Api-Key": SECRET}))
    client.force_login(operator_user)
    page = client.get("/servers/plain/").content.decode()
    assert 'id="server-actions"' in page and 'data-action="disable"' in page and 'data-action="remove"' in page
    assert 'id="discovery-progress"' in page and "js/server_page.js" in page
    keyed = client.get("/servers/keyed/").content.decode()
    assert 'data-action="remove"' not in keyed and "holds secrets" in keyed
    client.force_login(viewer_user)
    page = client.get("/servers/plain/").content.decode()
    assert 'id="server-actions"' not in page and "/servers/plain/edit/" not in page
    assert 'id="discovery-progress"' in page
