"""A server that lists 100,000 tools: discovery keeps the first MCP_MAX_CAPABILITIES_PER_LIST and says the rest were
not kept; the server page shows them a page at a time; /fusion/ offers a bounded set of tool names.

The server is tests/mcp_servers/many_tools.py, spoken to over the real protocol (stdio and Streamable HTTP): its
tools/list answers pages of 5,000 tools with a next cursor until 100,000.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from registry.models import Capability, CapabilityKind, CapabilitySnapshot
from tests.connections.helpers import HttpServer, free_port, script

pytestmark = pytest.mark.django_db(transaction=True)

PAGE_BYTES_BOUND = 500_000
# Generous for a shared two-core machine: the old page took 9.6 s for 100,000 tools.
PAGE_SECONDS_BOUND = 5.0


def many_tools_definition(name: str = "many", **env: str) -> dict:
    return {
        "name": name,
        "transport": "stdio",
        "command": sys.executable,
        "args": [script("many_tools")],
        "env": env,
        "server_type": "generic",
    }


def register(api, definition: dict) -> dict:
    response = api.post("/api/servers/", definition, format="json")
    assert response.status_code == 201, response.json()
    discovery = response.json()["discovery"]
    assert discovery["ok"] is True, discovery
    return discovery


@pytest.fixture
def http_many_tools() -> Iterator[HttpServer]:
    port = free_port()
    argv = [sys.executable, script("many_tools"), "streamable-http", "--port", str(port)]
    server = HttpServer(argv, port, "/mcp", marker="many-tools-http").start()
    yield server
    server.stop()


@pytest.fixture
def many(admin_api) -> dict:
    """The 100,000-tool server registered over stdio and discovered. A long request timeout, so that without the
    cap the discovery of all 100,000 would finish too, and the pages' own bounds are what a test checks."""
    return register(admin_api, many_tools_definition() | {"request_timeout_seconds": 90})


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def timed_get(client: Client, url: str):
    started = time.perf_counter()
    response = client.get(url)
    return response, time.perf_counter() - started


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_discovery_keeps_the_first_thousand_tools_and_says_the_rest_were_not_kept(
    transport, admin_api, caplog, request
):
    if transport == "stdio":
        definition = many_tools_definition()
    else:
        url = request.getfixturevalue("http_many_tools").url
        definition = {"name": "many", "transport": "http", "url": url}
    with caplog.at_level(logging.WARNING, logger="registry.services"):
        discovery = register(admin_api, definition)

    assert discovery["counts"]["tools"] == 1_000
    assert set(discovery["truncated"]) == {"tools"}
    assert "showing 1,000 of more than 5,000 tools" in discovery["truncated"]["tools"]
    assert "MCP_MAX_CAPABILITIES_PER_LIST = 1,000" in discovery["truncated"]["tools"]
    assert Capability.objects.filter(server__name="many", kind=CapabilityKind.TOOL).count() == 1_000

    # Paging stopped at the page where the cap was reached: 5,000 seen, not 100,000.
    snapshot = CapabilitySnapshot.objects.get(server__name="many")
    assert len(snapshot.tools) == 1_000
    report = snapshot.truncation["tools"]
    assert (report["kept"], report["seen"], report["more"], report["reason"]) == (1_000, 5_000, True, "count")
    assert report["setting"] == "MCP_MAX_CAPABILITIES_PER_LIST" and report["limit"] == 1_000

    lines = [record.getMessage() for record in caplog.records if "kept only part" in record.getMessage()]
    assert len(lines) == 1
    assert "'many'" in lines[0] and "showing 1,000 of more than 5,000 tools" in lines[0]


def test_the_capabilities_api_says_the_list_was_truncated(many, viewer_api, operator_api):
    body = viewer_api.get("/api/servers/many/capabilities/").json()
    assert len(body["tools"]) == 1_000
    assert body["tools"][0]["name"] == "echo" and body["tools"][1]["name"] == "tool_000000"
    assert "showing 1,000 of more than 5,000 tools; the rest were not kept" in body["truncated"]["tools"]
    assert body["truncation"]["tools"]["kept"] == 1_000 and body["truncation"]["tools"]["more"] is True
    assert "resources" not in body["truncated"]

    history = viewer_api.get("/api/servers/many/capabilities/history/").json()
    assert history[0]["counts"]["tools"] == 1_000
    assert "showing 1,000" in history[0]["truncated"]["tools"]

    # An unknown tool's error names a few of the server's tools, not a thousand.
    response = operator_api.post("/api/servers/many/call/", {"tool": "no_such_tool", "arguments": {}}, format="json")
    assert response.status_code == 400
    message = response.json()["tool"][0]
    assert "no_such_tool" in message and "and 950 more" in message
    assert len(message) < 2_000


def test_the_server_page_shows_one_page_of_tools_with_a_pager_and_stays_small(many, viewer_user, operator_user):
    page_url = reverse("registry:server_detail", args=["many"])
    viewer = signed_in(viewer_user)

    response, seconds = timed_get(viewer, page_url)
    assert response.status_code == 200
    html = response.content.decode()
    assert len(response.content) < PAGE_BYTES_BOUND, len(response.content)
    assert seconds < PAGE_SECONDS_BOUND, seconds
    assert "showing 1,000 of more than 5,000 tools" in html
    assert html.count('class="cap-name"') == 50
    assert "tool_000048" in html and "tool_000049" not in html
    assert "Tools 1–50 of 1000 · page 1 of 20" in html
    assert 'href="?tools_page=2#tools"' in html

    # The pager's link shows the next page.
    second = viewer.get(page_url + "?tools_page=2").content.decode()
    assert "tool_000049" in second and "tool_000098" in second and "tool_000048" not in second
    assert "Tools 51–100 of 1000 · page 2 of 20" in second
    assert 'href="?tools_page=1#tools"' in second

    # A page number that is not one shows the nearest page rather than an error.
    assert viewer.get(page_url + "?tools_page=abc").status_code == 200
    last = viewer.get(page_url + "?tools_page=99999")
    assert last.status_code == 200 and "page 20 of 20" in last.content.decode()

    # An operator's page carries call forms and their schemas, for the page's tools only.
    operator = signed_in(operator_user)
    response, seconds = timed_get(operator, page_url + "?tools_page=3")
    assert len(response.content) < PAGE_BYTES_BOUND, len(response.content)
    assert seconds < PAGE_SECONDS_BOUND, seconds
    schemas = re.search(r'<script id="tool-schemas" type="application/json">(.*?)</script>', response.content.decode())
    assert schemas is not None and schemas.group(1).count('"type": "object"') == 50


def test_the_fusion_page_offers_a_bounded_set_of_tool_names_and_finds_the_others(many, viewer_user, operator_user):
    operator = signed_in(operator_user)
    response, seconds = timed_get(operator, reverse("fusion:page"))
    assert response.status_code == 200
    assert len(response.content) < PAGE_BYTES_BOUND, len(response.content)
    assert seconds < PAGE_SECONDS_BOUND, seconds
    html = response.content.decode()
    options = re.findall(r'<option value="(tool_\d+|echo)"', html)
    assert len(options) == 200
    assert "The 200 most widely offered of 1000 tool names" in html

    # The search field, answered by the server, finds a tool outside the first 200.
    found = operator.get(reverse("fusion:page"), {"tool_search": "tool_0009"}).content.decode()
    assert re.findall(r'<option value="(tool_\d+)"', found) == [f"tool_{number:06d}" for number in range(900, 999)]
    assert "99 tool names matching" in found

    # Viewers get the page (without the form) just as small.
    response, _ = timed_get(signed_in(viewer_user), reverse("fusion:page"))
    assert response.status_code == 200 and len(response.content) < PAGE_BYTES_BOUND


def test_an_entry_over_the_byte_cap_is_dropped_with_the_reason(admin_api, viewer_api):
    discovery = register(admin_api, many_tools_definition(MANY_TOOLS_TOTAL="10", MANY_TOOLS_HUGE_BYTES="70000"))
    assert discovery["counts"]["tools"] == 9
    note = discovery["truncated"]["tools"]
    assert "1 tool dropped" in note and "MCP_MAX_CAPABILITY_BYTES = 65,536 bytes" in note and "tool_000001" in note
    assert "showing" not in note  # the list itself was complete

    body = viewer_api.get("/api/servers/many/capabilities/").json()
    assert "tool_000001" not in {tool["name"] for tool in body["tools"]}
    report = body["truncation"]["tools"]
    assert report["dropped_count"] == 1 and report["dropped"][0]["name"] == "tool_000001"
    assert report["dropped"][0]["bytes"] > 65_536 and report["reason"] == ""


@pytest.mark.parametrize(
    ("setting", "value", "kept", "words"),
    [
        ("MCP_MAX_CAPABILITIES_PER_LIST", 30, 30, "showing 30 of more than 50 tools"),
        ("MCP_MAX_CAPABILITY_LIST_BYTES", 2_000, 11, "their JSON passed MCP_MAX_CAPABILITY_LIST_BYTES = 2,000 bytes"),
    ],
)
def test_the_caps_follow_their_settings(settings, admin_api, setting, value, kept, words):
    setattr(settings, setting, value)
    discovery = register(admin_api, many_tools_definition(MANY_TOOLS_TOTAL="200", MANY_TOOLS_PAGE_SIZE="50"))
    assert discovery["counts"]["tools"] == kept
    assert words in discovery["truncated"]["tools"]


def test_a_server_within_the_limits_is_kept_whole_and_shown_without_a_note(admin_api, viewer_user):
    discovery = register(admin_api, many_tools_definition(MANY_TOOLS_TOTAL="120", MANY_TOOLS_PAGE_SIZE="50"))
    assert discovery["counts"]["tools"] == 120 and discovery["truncated"] == {}
    assert CapabilitySnapshot.objects.get(server__name="many").truncation == {}
    html = signed_in(viewer_user).get(reverse("registry:server_detail", args=["many"])).content.decode()
    assert "were kept" not in html and "Tools 1–50 of 120 · page 1 of 3" in html


def test_the_capability_history_names_a_few_new_tools_and_counts_the_rest(settings, admin_api, viewer_user):
    settings.MCP_MAX_CAPABILITIES_PER_LIST = 30
    register(admin_api, many_tools_definition(MANY_TOOLS_TOTAL="200", MANY_TOOLS_PAGE_SIZE="50"))
    settings.MCP_MAX_CAPABILITIES_PER_LIST = 60
    response = admin_api.post("/api/servers/many/discover/")
    assert response.status_code == 200 and response.json()["changed"] is True, response.json()

    html = signed_in(viewer_user).get(reverse("registry:server_detail", args=["many"])).content.decode()
    history = html[html.index("Capability history") :]
    # Tools 29..58 are new: the first ten by name are shown, the other twenty counted.
    assert history.count("change-added") == 10 and "+ tool_000029" in history and "+ tool_000038" in history
    assert "+ 20 more" in history
