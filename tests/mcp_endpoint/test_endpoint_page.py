"""The MCP endpoint page as Django serves it: who may open it, the addresses built from the request (host, port and
scheme the browser used), enabled servers only in the picker, and never a token's key in the page."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from registry.models import Server, ServerStatus
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PAGE = "/mcp-endpoint/"


def browser_of(user, **defaults) -> Client:  # type: ignore[no-untyped-def]
    client = Client(**defaults)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_anonymous_visitors_go_to_the_login_page(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={PAGE}"


def test_a_user_without_a_role_is_told_what_to_ask_for(outsider_user):
    response = browser_of(outsider_user).get(PAGE)
    assert response.status_code == 403 and b"viewers or operators group" in response.content


@pytest.mark.parametrize(
    ("persona", "allowed"),
    [
        ("viewer_user", "list and read (tools, resources, prompts); calling a tool needs an operator."),
        ("operator_user", "list, read and call: tools, resources and prompts."),
        ("admin_user", "list, read and call: tools, resources and prompts."),
    ],
)
def test_every_role_sees_the_page_and_what_its_token_may_do(request, persona, allowed):
    response = browser_of(request.getfixturevalue(persona)).get(PAGE)
    assert response.status_code == 200
    text = " ".join(response.content.decode().split())
    assert allowed in text
    assert 'href="/mcp-endpoint/" aria-current="page">MCP endpoint</a>' in text


def test_the_addresses_follow_the_host_and_scheme_of_the_request(viewer_user, settings):
    settings.ALLOWED_HOSTS = ["orchestrator.example"]
    plain = browser_of(viewer_user, HTTP_HOST="orchestrator.example:8443").get(PAGE)
    assert plain.context["aggregate_url"] == "http://orchestrator.example:8443/mcp/"
    assert plain.context["passthrough_base"] == "http://orchestrator.example:8443/mcp/servers/"
    secure = browser_of(viewer_user, HTTP_HOST="orchestrator.example").get(PAGE, secure=True)
    assert secure.context["aggregate_url"] == "https://orchestrator.example/mcp/"
    assert 'data-aggregate-url="https://orchestrator.example/mcp/"' in secure.content.decode()


def test_the_picker_offers_enabled_servers_by_name_with_their_status(viewer_user):
    for name, status, enabled in (
        ("zeta", ServerStatus.ONLINE, True),
        ("alpha", ServerStatus.DEGRADED, True),
        ("gone", ServerStatus.DISABLED, False),
    ):
        Server.objects.create(name=name, transport="http", url="http://127.0.0.1:9/mcp", status=status, enabled=enabled)
    response = browser_of(viewer_user).get(PAGE)
    assert response.context["servers"] == [
        {"name": "alpha", "status": "degraded"},
        {"name": "zeta", "status": "online"},
    ]
    page = response.content.decode()
    assert '<option value="alpha" data-status="degraded">alpha (degraded)</option>' in page
    assert "http://testserver/mcp/servers/alpha/" in page and 'value="gone"' not in page


def test_without_servers_the_page_says_so(viewer_user):
    response = browser_of(viewer_user).get(PAGE)
    assert "No server is registered and enabled yet." in response.content.decode()
    assert 'id="server-picker"' not in response.content.decode()


def test_the_page_shows_when_a_token_was_made_and_never_its_key(operator_user):
    token = Token.objects.create(user=operator_user)
    response = browser_of(operator_user).get(PAGE)
    page = response.content.decode()
    assert token.key not in page
    assert 'data-token-exists="true"' in page and f'data-token-created="{token.created.isoformat()}"' in page
    assert "You have an API token, created" in page and ">Replace token</button>" in page
    token.delete()
    page = browser_of(operator_user).get(PAGE).content.decode()
    assert 'data-token-exists="false"' in page and "You have no API token." in page
