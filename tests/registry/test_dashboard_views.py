"""The fleet dashboard pages: who may see them, what they show, and what they never show."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from registry.models import (
    CallRecord,
    Capability,
    CapabilityKind,
    CapabilitySnapshot,
    Server,
    ServerStatus,
    Tag,
    Transport,
)
from tests.conftest import PASSWORD

SECRET_ENV_VALUE = "sk-live-env-0123456789abcdef"
SECRET_HEADER_VALUE = "Bearer hdr-9876543210fedcba"

QUOTE_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"symbol": {"type": "string", "description": "Trading pair such as BTC-USD"}},
    "required": ["symbol"],
}


def _discovered(
    server: Server,
    *,
    tools: list[dict],
    resources: list[dict] | None = None,
    prompts: list[dict] | None = None,
    at=None,
):
    """A capability snapshot plus the capability index rows, as discovery would leave them."""
    at = at or timezone.now()
    snapshot = CapabilitySnapshot.objects.create(
        server=server,
        discovered_at=at,
        last_confirmed_at=at,
        protocol_version="2025-11-25",
        server_info={"name": f"{server.name}-impl", "version": "1.2.3"},
        instructions="Quotes are indicative.",
        tools=tools,
        resources=resources or [],
        prompts=prompts or [],
        content_hash=f"hash-{server.name}-{at.timestamp()}",
    )
    server.capabilities.all().delete()
    for tool in tools:
        Capability.objects.create(
            server=server, snapshot=snapshot, kind=CapabilityKind.TOOL, name=tool["name"], identifier=tool["name"]
        )
    for resource in resources or []:
        Capability.objects.create(
            server=server,
            snapshot=snapshot,
            kind=CapabilityKind.RESOURCE,
            name=resource["name"],
            identifier=resource["uri"],
        )
    for prompt in prompts or []:
        Capability.objects.create(
            server=server, snapshot=snapshot, kind=CapabilityKind.PROMPT, name=prompt["name"], identifier=prompt["name"]
        )
    return snapshot


@pytest.fixture
def exchange(db) -> Server:
    server = Server.objects.create(
        name="exchange-alpha",
        display_name="Alpha Exchange",
        transport=Transport.HTTP,
        url="http://127.0.0.1:9101/mcp",
        headers={"Authorization": SECRET_HEADER_VALUE},
        env={"ALPHA_API_KEY": SECRET_ENV_VALUE},
        server_type="exchange",
        priority=200,
        status=ServerStatus.ONLINE,
        status_reason="ping 3 ms",
        protocol_version="2025-11-25",
        last_seen_at=timezone.now(),
        metadata={"fees": {"taker": 0.001}},
    )
    server.tags.add(Tag.objects.create(name="crypto"))
    _discovered(
        server,
        tools=[
            {"name": "get_quote", "description": "Best bid and ask", "inputSchema": QUOTE_INPUT_SCHEMA},
            {"name": "get_order_book", "description": "Order book", "inputSchema": {"type": "object"}},
        ],
        resources=[{"uri": "quotes://BTC-USD", "name": "BTC-USD", "mimeType": "application/json"}],
        prompts=[{"name": "summarise_market", "arguments": [{"name": "symbol", "required": True}]}],
    )
    return server


@pytest.fixture
def clock(db) -> Server:
    return Server.objects.create(
        name="clock",
        transport=Transport.STDIO,
        command="mcp-server-time",
        env={"TZ_SECRET": "tz-secret-value-42"},
        server_type="utility",
        status=ServerStatus.OFFLINE,
        status_reason="connection refused",
    )


def _logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_anonymous_visitor_is_sent_to_the_login_page(client, exchange):
    for url in (reverse("registry:overview"), reverse("registry:server_detail", args=[exchange.name])):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_an_outsider_is_told_to_ask_an_admin_for_a_role(outsider_user, exchange):
    client = _logged_in(outsider_user)
    for url in (reverse("registry:overview"), reverse("registry:server_detail", args=[exchange.name])):
        response = client.get(url)
        assert response.status_code == 403
        assert "Ask an admin" in response.content.decode()


def test_a_viewer_sees_each_server_with_its_status_and_capability_counts(viewer_user, exchange, clock):
    response = _logged_in(viewer_user).get(reverse("registry:overview"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "exchange-alpha" in html and "Alpha Exchange" in html and "clock" in html
    assert "status-online" in html and "ping 3 ms" in html
    assert "status-offline" in html
    rows = {server.name: server for server in response.context["servers"]}
    alpha = rows["exchange-alpha"]
    assert (alpha.tool_count, alpha.resource_count, alpha.resource_template_count, alpha.prompt_count) == (2, 1, 0, 1)
    summary = response.context["summary"]
    assert (summary["total"], summary["tools"], summary["distinct_tools"]) == (2, 2, 2)
    assert {tile["status"]: tile["count"] for tile in summary["tiles"] if tile["count"]} == {"online": 1, "offline": 1}
    assert 'data-server="exchange-alpha"' in html


def test_the_status_tiles_add_up_to_the_fleet_and_link_to_the_filtered_list(viewer_user, exchange, clock):
    for name, status, enabled in (
        ("gamma", ServerStatus.MAINTENANCE, True),
        ("delta", ServerStatus.DEGRADED, True),
        ("epsilon", ServerStatus.DISABLED, False),
        ("zeta", ServerStatus.PENDING, True),
        ("eta", ServerStatus.UNKNOWN, True),
    ):
        Server.objects.create(
            name=name, transport=Transport.HTTP, url="http://127.0.0.1:9/mcp", status=status, enabled=enabled
        )
    client = _logged_in(viewer_user)

    response = client.get(reverse("registry:overview"))

    summary = response.context["summary"]
    counts = {tile["status"]: tile["count"] for tile in summary["tiles"]}
    assert summary["total"] == 7 == sum(counts.values())
    assert set(counts) == set(ServerStatus.values)  # every status has a tile: each server is in exactly one
    assert counts == {
        "online": 1,
        "offline": 1,
        "maintenance": 1,
        "degraded": 1,
        "disabled": 1,
        "pending": 1,
        "unknown": 1,
        "unhealthy": 0,
    }
    html = response.content.decode()
    assert "7 servers = 1 offline + 1 pending + 1 degraded + 1 unknown + 1 maintenance + 1 disabled + 1 online" in html
    for status in ("online", "degraded", "offline", "maintenance", "disabled", "pending"):
        assert f'href="?status={status}#servers" data-tile="{status}"' in html
    assert 'data-tile="unhealthy" hidden' in html  # none: not shown, but there for the live page

    filtered = client.get(reverse("registry:overview"), {"status": "degraded"})
    assert [server.name for server in filtered.context["servers"]] == ["delta"]
    assert filtered.context["summary"]["total"] == 7  # the tiles count the whole fleet whatever the filter


def test_the_overview_names_each_server_not_online_with_its_reason_in_words(viewer_user, exchange, clock):
    Server.objects.create(
        name="gamma",
        transport=Transport.HTTP,
        url="http://127.0.0.1:9/mcp",
        status=ServerStatus.DEGRADED,
        status_reason="slow: the median check is over the 120 ms target",
    )
    Server.objects.create(
        name="delta", transport=Transport.HTTP, url="http://127.0.0.1:9/mcp", status=ServerStatus.MAINTENANCE
    )

    response = _logged_in(viewer_user).get(reverse("registry:overview"))

    attention = response.context["attention"]
    assert [(row["name"], row["status"]) for row in attention] == [
        ("clock", "offline"),
        ("gamma", "degraded"),
        ("delta", "maintenance"),
    ]  # worst first; the online server is not listed
    assert [row["reason"] for row in attention] == [
        "connection refused",
        "slow: the median check is over the 120 ms target",
        "in a maintenance window: no alerts",  # no reason given: the status said in words
    ]
    html = response.content.decode()
    assert '<span class="attention-reason">slow: the median check is over the 120 ms target</span>' in html
    assert 'data-api="/api/alerts/?state=firing&amp;limit=50"' in html and 'href="/health/"' in html


def test_the_overview_says_every_server_is_online_when_none_needs_attention(viewer_user, exchange):
    html = _logged_in(viewer_user).get(reverse("registry:overview")).content.decode()

    assert "Every server is online." in html


def test_the_overview_says_how_to_register_a_server_when_the_fleet_is_empty(viewer_user):
    html = _logged_in(viewer_user).get(reverse("registry:overview")).content.decode()

    assert "No servers registered yet" in html
    assert "/api/servers/" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"type": "exchange"}, {"exchange-alpha"}),
        ({"type": "utility"}, {"clock"}),
        ({"tag": "crypto"}, {"exchange-alpha"}),
        ({"status": "offline"}, {"clock"}),
        ({"capability": "get_quote"}, {"exchange-alpha"}),
        ({"capability": "quotes://BTC-USD"}, {"exchange-alpha"}),
        ({"capability": "no-such-tool"}, set()),
        ({}, {"exchange-alpha", "clock"}),
    ],
)
def test_filters_narrow_the_server_list(viewer_user, exchange, clock, query, expected):
    response = _logged_in(viewer_user).get(reverse("registry:overview"), query)

    assert {server.name for server in response.context["servers"]} == expected


def test_the_server_page_shows_tool_names_and_input_schemas(viewer_user, exchange):
    response = _logged_in(viewer_user).get(reverse("registry:server_detail", args=[exchange.name]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "get_quote" in html and "get_order_book" in html
    assert "Trading pair such as BTC-USD" in html  # from the input schema, pretty-printed
    assert "quotes://BTC-USD" in html and "summarise_market" in html
    assert "Quotes are indicative." in html


def test_the_server_page_never_shows_env_or_header_values(viewer_user, exchange, clock):
    client = _logged_in(viewer_user)

    alpha = client.get(reverse("registry:server_detail", args=[exchange.name])).content.decode()
    assert "ALPHA_API_KEY" in alpha and "Authorization" in alpha
    assert SECRET_ENV_VALUE not in alpha
    assert SECRET_HEADER_VALUE not in alpha
    assert "hdr-9876543210fedcba" not in alpha

    local = client.get(reverse("registry:server_detail", args=[clock.name])).content.decode()
    assert "TZ_SECRET" in local
    assert "tz-secret-value-42" not in local
    assert "mcp-server-time" in local


def test_the_server_page_says_when_a_server_was_never_discovered(viewer_user, clock):
    html = _logged_in(viewer_user).get(reverse("registry:server_detail", args=[clock.name])).content.decode()

    assert "never been discovered" in html


def test_the_capability_history_names_the_tools_added_and_removed(viewer_user, exchange):
    later = timezone.now() + timedelta(minutes=5)
    _discovered(
        exchange,
        tools=[
            {"name": "get_quote", "inputSchema": QUOTE_INPUT_SCHEMA},
            {"name": "reserve_order", "inputSchema": {"type": "object"}},
        ],
        at=later,
    )

    response = _logged_in(viewer_user).get(reverse("registry:server_detail", args=[exchange.name]))

    newest, oldest = response.context["history"]
    tool_changes = next(change for change in newest["changes"]["kinds"] if change["kind"] == "tools")
    assert tool_changes == {"kind": "tools", "added": ["reserve_order"], "removed": ["get_order_book"]}
    assert oldest["changes"]["first"] is True
    html = response.content.decode()
    assert "+ reserve_order" in html and "− get_order_book" in html


def test_the_server_page_lists_recent_calls(viewer_user, exchange):
    CallRecord.objects.create(
        server=exchange,
        operation="tools/call",
        target_name="get_quote",
        started_at=timezone.now(),
        latency_ms=4.2,
        ok=True,
    )
    CallRecord.objects.create(
        server=exchange,
        operation="tools/call",
        target_name="get_order_book",
        started_at=timezone.now(),
        latency_ms=10000,
        ok=False,
        error_kind="timeout",
        error_message="no answer within 10 s",
    )

    html = _logged_in(viewer_user).get(reverse("registry:server_detail", args=[exchange.name])).content.decode()

    assert "4.2 ms" in html and "timeout" in html and "no answer within 10 s" in html


def test_an_unknown_server_is_a_404(viewer_user):
    response = _logged_in(viewer_user).get(reverse("registry:server_detail", args=["no-such-server"]))

    assert response.status_code == 404


def test_a_persona_logs_in_with_the_password_and_logs_out(client, viewer_user):
    page = client.get(reverse("login"))
    assert page.status_code == 200

    response = client.post(reverse("login"), {"username": viewer_user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == reverse("registry:overview")
    overview = client.get(reverse("registry:overview")).content.decode()
    assert viewer_user.username in overview and "viewer" in overview

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("registry:overview")).status_code == 302


def test_a_wrong_password_is_shown_as_a_form_error(client, viewer_user):
    response = client.post(reverse("login"), {"username": viewer_user.username, "password": "wrong"})

    assert response.status_code == 200
    assert "notice-error" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated


def test_only_staff_see_the_admin_link(admin_user, viewer_user):
    admin_url = reverse("admin:index")

    assert admin_url in _logged_in(admin_user).get(reverse("registry:overview")).content.decode()
    assert admin_url not in _logged_in(viewer_user).get(reverse("registry:overview")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_operators_discover_from_the_server_page_and_viewers_cannot(client, operator_user, viewer_user):
    from registry.services import server_create
    from tests.exchanges import EXCHANGE_HOST

    server_create(name="exchange-alpha", transport="http", url=EXCHANGE_HOST.fresh_exchange_url("--profile", "alpha"))
    client.force_login(viewer_user)
    assert b"Discover now" not in client.get("/servers/exchange-alpha/").content
    assert client.post("/servers/exchange-alpha/discover/").status_code == 403

    client.force_login(operator_user)
    assert b"Discover now" in client.get("/servers/exchange-alpha/").content
    page = client.post("/servers/exchange-alpha/discover/", follow=True)
    assert b"Discovered exchange-alpha: 8 tools" in page.content
    assert b"get_quote" in page.content
    assert client.get("/servers/exchange-alpha/discover/").status_code == 405


def test_a_denied_request_logs_one_line_without_a_traceback(outsider_user, exchange, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = _logged_in(outsider_user).get(reverse("registry:overview"))

    assert response.status_code == 403 and "Ask an admin" in response.content.decode()
    (record,) = [record for record in caplog.records if record.name == "django.request"]
    assert record.exc_info is None and not record.exc_text
    assert record.getMessage().startswith("Forbidden (Permission denied): /") and "Ask an admin" in record.getMessage()
    assert "Traceback" not in caplog.text


def test_the_nav_links_every_page_and_marks_the_current_one(viewer_user, exchange):
    client = _logged_in(viewer_user)

    overview = client.get(reverse("registry:overview")).content.decode()
    catalogue = client.get(reverse("registry:catalogue")).content.decode()

    for html in (overview, catalogue):
        assert 'href="/catalogue/"' in html and 'href="/alerting/"' in html and 'class="who-name"' in html
    assert '<a href="/" aria-current="page">Fleet</a>' in overview
    assert '<a href="/catalogue/" aria-current="page">Catalogue</a>' in catalogue
    assert '<a href="/" aria-current="page">' not in catalogue
