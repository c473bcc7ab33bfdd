"""The fleet-wide catalogue (`/catalogue/` and `GET /api/catalogue/`): what the fleet offers now, found by any part of
a name, title, description or URI in any case, one entry per kind and name with the servers offering it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from registry.models import Capability, CapabilityKind, CapabilitySnapshot, Server, ServerStatus, Transport

pytestmark = pytest.mark.django_db


def _server(name: str, status: str = ServerStatus.ONLINE) -> Server:
    return Server.objects.create(name=name, transport=Transport.HTTP, url="http://127.0.0.1:9/mcp", status=status)


def _offers(server: Server, *entries: tuple[str, str, str, str]) -> None:
    """Capability index rows of the server's latest discovery: (kind, name, identifier, description)."""
    now = timezone.now()
    snapshot = CapabilitySnapshot.objects.create(
        server=server, discovered_at=now, last_confirmed_at=now, protocol_version="2025-11-25", content_hash=server.name
    )
    for kind, name, identifier, description in entries:
        Capability.objects.create(
            server=server, snapshot=snapshot, kind=kind, name=name, identifier=identifier, description=description
        )


@pytest.fixture
def fleet(db) -> None:
    exchange = (CapabilityKind.TOOL, "get_quote", "get_quote", "Best bid and ask for a symbol")
    book = (CapabilityKind.TOOL, "get_order_book", "get_order_book", "Order book levels (bids, asks)")
    _offers(_server("exchange-alpha"), exchange, book)
    _offers(
        _server("exchange-beta", ServerStatus.DEGRADED),
        exchange,
        book,
        (CapabilityKind.RESOURCE, "beta-BTC-USD-ticker", "ticker://beta/BTC-USD", "Current BTC-USD QUOTE as JSON"),
        (CapabilityKind.PROMPT, "explain_spread", "explain_spread", "Explain the bid/ask spread"),
    )
    _offers(_server("clock"), (CapabilityKind.TOOL, "get_current_time", "get_current_time", "The time in a zone"))


def test_a_substring_of_a_name_finds_the_tool_in_any_case(viewer_api, fleet):
    body = viewer_api.get("/api/catalogue/", {"q": "QuOtE", "kind": "tool"}).json()

    assert body["count"] == 1
    (entry,) = body["results"]
    assert (entry["kind"], entry["name"], entry["server_count"]) == ("tool", "get_quote", 2)
    assert entry["description"] == "Best bid and ask for a symbol"
    assert [(server["name"], server["status"]) for server in entry["servers"]] == [
        ("exchange-alpha", "online"),
        ("exchange-beta", "degraded"),
    ]


def test_the_search_reads_descriptions_and_uris_and_every_kind(viewer_api, fleet):
    names = {(entry["kind"], entry["name"]) for entry in viewer_api.get("/api/catalogue/?q=quote").json()["results"]}
    assert names == {("tool", "get_quote"), ("resource", "beta-BTC-USD-ticker")}  # the resource by its description

    by_uri = viewer_api.get("/api/catalogue/?q=ticker://beta").json()["results"]
    assert [(entry["name"], entry["servers"][0]["identifier"]) for entry in by_uri] == [
        ("beta-BTC-USD-ticker", "ticker://beta/BTC-USD")
    ]
    prompts = viewer_api.get("/api/catalogue/?kind=prompt").json()["results"]
    assert [entry["name"] for entry in prompts] == ["explain_spread"]
    assert viewer_api.get("/api/catalogue/?q=no-such-thing").json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }


def test_the_catalogue_is_paginated(viewer_api, fleet):
    first = viewer_api.get("/api/catalogue/?limit=2").json()
    second = viewer_api.get(first["next"]).json()

    assert first["count"] == 5 and len(first["results"]) == 2 and len(second["results"]) == 2
    seen = [entry["name"] for entry in first["results"] + second["results"]]
    assert seen == ["beta-BTC-USD-ticker", "explain_spread", "get_current_time", "get_order_book"]


def test_a_bad_filter_is_named(viewer_api, fleet):
    response = viewer_api.get("/api/catalogue/?kind=widget")
    assert response.status_code == 400 and "kind" in response.json()

    too_long = viewer_api.get("/api/catalogue/", {"q": "x" * 201})
    assert too_long.status_code == 400 and "q" in too_long.json()


def test_only_people_with_a_role_read_the_catalogue(anonymous_api, outsider_api, fleet):
    assert anonymous_api.get("/api/catalogue/").status_code in (401, 403)
    assert outsider_api.get("/api/catalogue/").status_code == 403


def test_the_catalogue_page_searches_and_links_each_server(viewer_user, fleet):
    client = Client()
    client.force_login(viewer_user)

    response = client.get("/catalogue/", {"q": "quote"})

    assert response.status_code == 200
    assert [(entry["kind"], entry["name"]) for entry in response.context["entries"]] == [
        ("resource", "beta-BTC-USD-ticker"),
        ("tool", "get_quote"),
    ]
    html = response.content.decode()
    assert 'href="/servers/exchange-alpha/#tools"' in html and 'href="/servers/exchange-beta/#resources"' in html
    assert "2 entries matching “quote”" in html
    assert "Nothing in the fleet matches." in client.get("/catalogue/", {"q": "zzz"}).content.decode()
    assert client.get("/catalogue/", {"q": "quo\x00te"}).context["page"].paginator.count == 2  # a NUL dropped
    # A kind that is not one is ignored on the page (the API names it).
    assert client.get("/catalogue/", {"kind": "widget"}).context["page"].paginator.count == 5


def test_the_catalogue_page_needs_a_role(client, outsider_user, fleet):
    assert client.get("/catalogue/").status_code == 302
    client.force_login(outsider_user)
    assert client.get("/catalogue/").status_code == 403
