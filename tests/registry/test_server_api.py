"""The servers API: permissions per persona, validation, secrets never shown, discovery and lookups over real MCP."""

from __future__ import annotations

import json
import sys

import pytest
from django.conf import settings

from registry.models import CapabilitySnapshot, Server
from registry.services import server_create

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "very-secret-token-1234"
HTTP_SERVER = {"name": "remote-quotes", "transport": "http", "url": "http://127.0.0.1:9/mcp", "server_type": "exchange"}


def exchange_definition(name: str = "exchange-alpha", **extra) -> dict:
    return {
        "name": name,
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-m", "exchange_fleet", "serve", "--profile", "alpha"],
        "cwd": str(settings.BASE_DIR),
        "env": {"EXCHANGE_API_KEY": SECRET},
        "server_type": "exchange",
        "tags": ["demo", "spot"],
        **extra,
    }


@pytest.mark.parametrize("persona", ["anonymous_api", "outsider_api"])
def test_people_without_a_role_cannot_read(request, persona):
    server_create(**HTTP_SERVER)
    client = request.getfixturevalue(persona)
    assert client.get("/api/servers/").status_code in (401, 403)
    assert client.get("/api/servers/remote-quotes/").status_code in (401, 403)


def test_viewers_read_but_cannot_write(viewer_api):
    server_create(**HTTP_SERVER)
    assert viewer_api.get("/api/servers/").json()["results"][0]["name"] == "remote-quotes"
    assert (
        viewer_api.post("/api/servers/?discover=false", HTTP_SERVER | {"name": "x"}, format="json").status_code == 403
    )
    assert viewer_api.patch("/api/servers/remote-quotes/", {"priority": 1}, format="json").status_code == 403
    assert viewer_api.delete("/api/servers/remote-quotes/").status_code == 403
    assert viewer_api.post("/api/servers/remote-quotes/discover/").status_code == 403
    assert Server.objects.get().priority == 100


def test_operators_register_http_servers_but_not_commands(operator_api):
    response = operator_api.post("/api/servers/?discover=false", HTTP_SERVER, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "unknown"

    response = operator_api.post("/api/servers/?discover=false", exchange_definition(), format="json")
    assert response.status_code == 403
    assert "Only admins" in response.json()["detail"]
    assert not Server.objects.filter(transport="stdio").exists()


def test_operators_cannot_turn_an_http_server_into_a_command(operator_api):
    server_create(**HTTP_SERVER)
    response = operator_api.patch(
        "/api/servers/remote-quotes/", {"transport": "stdio", "command": "rm", "url": ""}, format="json"
    )
    assert response.status_code == 403
    assert Server.objects.get().transport == "http"


def test_token_authentication_works_and_a_bad_token_is_refused(admin_user, client):
    response = client.post("/api/auth/token/", {"username": admin_user.username, "password": "correct-horse-battery"})
    token = response.json()["token"]
    assert client.get("/api/servers/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    assert client.get("/api/servers/", HTTP_AUTHORIZATION="Token not-a-token").status_code == 401


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"name": "a", "transport": "stdio"}, "command"),
        ({"name": "a", "transport": "http"}, "url"),
        ({"name": "a", "transport": "http", "url": "ftp://127.0.0.1/x"}, "url"),
        ({"name": "a", "transport": "http", "url": "http://u:p@127.0.0.1/mcp"}, "url"),
        ({"name": "a", "transport": "http", "url": "http://127.0.0.1/mcp", "command": "ls"}, "command"),
        ({"name": "a", "transport": "sse", "url": "http://127.0.0.1/sse", "env": {"A": "b"}}, "env"),
        ({"name": "a", "transport": "telepathy", "url": "http://127.0.0.1/mcp"}, "transport"),
        ({"name": "a b", "transport": "http", "url": "http://127.0.0.1/mcp"}, "name"),
        ({"name": "a", "transport": "http", "url": "http://127.0.0.1/mcp", "priority": "high"}, "priority"),
        ({"name": "a", "transport": "stdio", "command": "x", "args": "not-a-list"}, "args"),
    ],
)
def test_bad_definitions_are_refused_field_by_field_and_nothing_is_written(admin_api, definition, field):
    response = admin_api.post("/api/servers/?discover=false", definition, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Server.objects.exists()


def test_duplicate_names_are_refused(operator_api):
    server_create(**HTTP_SERVER)
    response = operator_api.post("/api/servers/?discover=false", HTTP_SERVER, format="json")
    assert response.status_code == 400
    assert "already exists" in json.dumps(response.json())


def test_secrets_are_never_shown_back(admin_api):
    server_create(**HTTP_SERVER, headers={"Authorization": f"Bearer {SECRET}"})
    response = admin_api.post("/api/servers/?discover=false", exchange_definition(), format="json")
    assert response.status_code == 201
    bodies = [
        response.content,
        admin_api.get("/api/servers/").content,
        admin_api.get("/api/servers/exchange-alpha/").content,
        admin_api.get("/api/servers/remote-quotes/").content,
        admin_api.patch("/api/servers/exchange-alpha/", {"priority": 5}, format="json").content,
    ]
    assert all(SECRET.encode() not in body for body in bodies)
    detail = admin_api.get("/api/servers/exchange-alpha/").json()
    assert detail["env_keys"] == ["EXCHANGE_API_KEY"]
    assert admin_api.get("/api/servers/remote-quotes/").json()["header_keys"] == ["Authorization"]
    # A partial update that does not mention the secret keeps it.
    assert Server.objects.get(name="exchange-alpha").env == {"EXCHANGE_API_KEY": SECRET}


def test_registering_a_stdio_exchange_discovers_it_over_real_mcp(admin_api, live_fleet):
    response = admin_api.post("/api/servers/", exchange_definition(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["discovery"]["ok"] is True, body["discovery"]
    assert body["status"] == "online"
    assert body["protocol_version"] == "2026-07-28"
    assert body["capability_counts"]["tools"] >= 5
    assert body["capability_counts"]["resources"] >= 1

    capabilities = admin_api.get("/api/servers/exchange-alpha/capabilities/").json()
    quote_tool = next(tool for tool in capabilities["tools"] if tool["name"] == "get_quote")
    assert "symbol" in quote_tool["inputSchema"]["properties"]
    assert "outputSchema" in quote_tool
    assert capabilities["server_info"]["name"]

    # Lookups by capability, tag, type and status find it; non-matching ones do not.
    server_create(**HTTP_SERVER)
    for query in ("capability=get_quote", "tag=spot", "server_type=exchange&transport=stdio", "status=online"):
        names = [item["name"] for item in admin_api.get(f"/api/servers/?{query}").json()["results"]]
        assert names == ["exchange-alpha"], query
    assert admin_api.get("/api/servers/?capability=get_quote&capability_kind=prompt").json()["results"] == []
    assert admin_api.get("/api/servers/?capability=no_such_tool").json()["results"] == []
    resource_uri = capabilities["resources"][0]["uri"]
    names = [item["name"] for item in admin_api.get("/api/servers/", {"capability": resource_uri}).json()["results"]]
    assert names == ["exchange-alpha"]


def test_discovering_again_without_changes_keeps_one_snapshot_and_confirms_it(admin_api):
    admin_api.post("/api/servers/", exchange_definition(), format="json")
    first = CapabilitySnapshot.objects.get()
    response = admin_api.post("/api/servers/exchange-alpha/discover/")
    assert response.status_code == 200
    assert response.json()["changed"] is False
    snapshot = CapabilitySnapshot.objects.get()
    assert snapshot.pk == first.pk and snapshot.last_confirmed_at > first.last_confirmed_at
    history = admin_api.get("/api/servers/exchange-alpha/capabilities/history/").json()
    assert len(history) == 1 and history[0]["counts"]["tools"] >= 5


def test_an_unreachable_server_is_registered_offline_with_the_reason(operator_api, live_fleet):
    response = operator_api.post("/api/servers/", HTTP_SERVER | {"request_timeout_seconds": 2}, format="json")
    assert response.status_code == 201
    assert response.json()["discovery"]["ok"] is False
    assert response.json()["discovery"]["error"]
    assert response.json()["status"] == "offline"
    retry = operator_api.post("/api/servers/remote-quotes/discover/")
    assert retry.status_code == 502 and retry.json()["ok"] is False


def test_capabilities_of_an_undiscovered_server_say_how_to_discover(viewer_api):
    server_create(**HTTP_SERVER)
    response = viewer_api.get("/api/servers/remote-quotes/capabilities/")
    assert response.status_code == 404
    assert "discover" in response.json()["detail"]


def test_deleting_a_server_needs_the_right_role_and_removes_it(operator_api, admin_api):
    admin_api.post("/api/servers/?discover=false", exchange_definition(), format="json")
    assert operator_api.delete("/api/servers/exchange-alpha/").status_code == 403
    assert admin_api.delete("/api/servers/exchange-alpha/").status_code == 204
    assert not Server.objects.exists()


def test_the_openapi_schema_and_docs_page_are_served(viewer_api, client, viewer_user):
    schema = viewer_api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/servers/{name}/discover/" in json.loads(schema.content)["paths"]
    client.force_login(viewer_user)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
