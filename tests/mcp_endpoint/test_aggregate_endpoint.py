"""`/mcp/`, the whole fleet as one MCP server, through the SDK's own Client over real HTTP: a uvicorn serving the
site's ASGI application, a running fleet application, real servers (a demo exchange over Streamable HTTP, the
well-behaved test server over stdio, the conformance upstream over HTTP for its resource template).

One fleet and one web server for the module (starting them costs more than the tests): the module's fixture writes
its rows committed, with the database unblocked for the module, so the web server's and the fleet's threads see them,
and empties the database at the end, as a transactional test does. The tests carry no django_db mark (a test's
transaction would lock SQLite's writers out for its length; a transactional test would empty the module's rows after
each), so the fixture sets the test database up itself when no other test of the run asked pytest-django for it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx2
import mcp_types as types
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import override_settings
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ToolsListChanged
from rest_framework.authtoken.models import Token

from exchange_fleet.launcher import free_port, stop_process
from mcp_endpoint.fleet_catalogue import forget_cached
from registry.models import CallRecord, Server, ServerStatus
from registry.permissions import OPERATOR_GROUP, VIEWER_GROUP
from registry.services import server_create
from tests.conftest import TEST_FLEET_OPTIONS
from tests.exchanges import EXCHANGE_HOST, register_exchange
from tests.mcp_endpoint.live_server import serving
from tests.mcp_endpoint.module_database import own_test_database
from tests.waiting import wait_for

CONFORMANCE_UPSTREAM = settings.BASE_DIR / "tests" / "mcp_servers" / "conformance_upstream.py"
WELL_BEHAVED = settings.BASE_DIR / "tests" / "mcp_servers" / "well_behaved.py"
HELPER_TIMEOUT = 2.0  # the stdio helper's request timeout: its `slow` tool outlasts it on demand
MANY_TOOLS = settings.BASE_DIR / "tests" / "mcp_servers" / "many_tools.py"
MANY = 700  # tools of the many-tools server: the fleet's list is longer than a page (aggregate.PAGE_SIZE, 500)
READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class Endpoint:
    url: str
    operator_token: str
    viewer_token: str
    outsider_token: str


# The module's fleet lives as long as the module: the suite's per-test teardowns would stop it after the first test.
@pytest.fixture(autouse=True)
def _close_live_sessions() -> Iterator[None]:
    yield


@pytest.fixture(autouse=True)
def _retire_hosted_exchanges() -> Iterator[None]:
    yield


def _token_for(username: str, group: str | None) -> str:
    user = User.objects.create_user(username=username, password="unused-here")
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return Token.objects.create(user=user).key


def _offered(*names: str) -> bool:
    online = set(Server.objects.filter(name__in=names, status=ServerStatus.ONLINE).values_list("name", flat=True))
    return online == set(names) and all(Server.objects.get(name=name).snapshots.exists() for name in names)


@pytest.fixture(scope="module")
def endpoint(django_db_setup, django_db_blocker) -> Iterator[Endpoint]:  # type: ignore[no-untyped-def]
    from fleet.application import FleetApplication

    conformance_port = free_port()
    conformance = subprocess.Popen(
        [sys.executable, str(CONFORMANCE_UPSTREAM), "--port", str(conformance_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fleet = None
    with (
        django_db_blocker.unblock(),
        own_test_database(),
        override_settings(
            MCP_RECONNECT_INITIAL_SECONDS=0.2, MCP_RECONNECT_MAX_SECONDS=1.0, HEALTH_CHECK_INTERVAL_SECONDS=1.0
        ),
    ):
        try:
            operator_token = _token_for("oscar-operator", OPERATOR_GROUP)
            viewer_token = _token_for("vera-viewer", VIEWER_GROUP)
            outsider_token = _token_for("otto-outsider", None)
            register_exchange("exchange-alpha")
            register_exchange("exchange-bravo", profile="beta")  # two exchanges: fused__ and balanced__ tools
            server_create(
                name="helper-stdio",
                transport="stdio",
                command=sys.executable,
                args=[str(WELL_BEHAVED), "stdio"],
                server_type="utility",
                request_timeout_seconds=HELPER_TIMEOUT,
            )
            server_create(
                name="many-tools",
                transport="stdio",
                command=sys.executable,
                args=[str(MANY_TOOLS), "stdio"],
                env={"MANY_TOOLS_TOTAL": str(MANY), "MANY_TOOLS_PAGE_SIZE": "300"},
                server_type="utility",
            )
            server_create(
                name="conformance", transport="http", url=f"http://127.0.0.1:{conformance_port}/mcp", server_type="test"
            )
            # Registered at an address where nothing listens: health calls it offline.
            server_create(
                name="exchange-delta",
                transport="http",
                url=f"http://127.0.0.1:{free_port()}/mcp",
                server_type="exchange",
            )
            fleet = FleetApplication(**TEST_FLEET_OPTIONS).start()
            wait_for(
                lambda: _offered("exchange-alpha", "exchange-bravo", "helper-stdio", "conformance", "many-tools"),
                what="the servers online, discovered",
            )
            wait_for(
                lambda: Server.objects.get(name="exchange-delta").status == ServerStatus.OFFLINE,
                what="exchange-delta offline",
            )
            forget_cached()
            with serving() as base_url:
                yield Endpoint(
                    url=f"{base_url}/mcp/",
                    operator_token=operator_token,
                    viewer_token=viewer_token,
                    outsider_token=outsider_token,
                )
        finally:
            if fleet is not None:
                fleet.stop()
            EXCHANGE_HOST.retire_made()
            stop_process(conformance)
            call_command("flush", interactive=False, verbosity=0)
            forget_cached()


@asynccontextmanager
async def mcp_client(endpoint: Endpoint, token: str | None = None, **options: object) -> AsyncIterator[Client]:
    """The SDK's Client on /mcp/ with a Bearer token (the operator's unless given)."""
    headers = {"Authorization": f"Bearer {token or endpoint.operator_token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http:
        transport = streamable_http_client(endpoint.url, http_client=http)
        async with Client(transport, read_timeout_seconds=READ_TIMEOUT, cache=None, **options) as client:  # type: ignore[arg-type]
            yield client


async def all_tools(client: Client) -> dict[str, types.Tool]:
    """Every tool /mcp/ lists, page after page."""
    tools: dict[str, types.Tool] = {}
    cursor = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools.update((tool.name, tool) for tool in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            return tools


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(item.text for item in result.content if isinstance(item, types.TextContent))


ERAS = [pytest.param({}, id="2026-era"), pytest.param({"mode": "legacy"}, id="2025-era")]


@pytest.mark.parametrize("era", ERAS)
async def test_it_lists_every_online_servers_tools_under_their_server_names(endpoint, era):
    async with mcp_client(endpoint, **era) as client:
        tools = await all_tools(client)
    assert {
        "exchange-alpha__get_quote",
        "helper-stdio__echo",
        "helper-stdio__add",
        "conformance__test_simple_text",
    } <= set(tools)
    assert not any(name.startswith("exchange-delta__") for name in tools), "an offline server offers nothing"
    # The upstream's schemas and annotations, unchanged.
    add = tools["helper-stdio__add"]
    assert add.input_schema["required"] == ["a", "b"]
    assert add.output_schema is not None and "total" in add.output_schema["properties"]
    assert tools["exchange-alpha__get_quote"].annotations is not None
    assert tools["exchange-alpha__get_quote"].annotations.read_only_hint is True


@pytest.mark.parametrize("era", ERAS)
async def test_a_namespaced_call_reaches_its_server_and_keeps_the_result_as_sent(endpoint, era):
    async with mcp_client(endpoint, **era) as client:
        added = await client.call_tool("helper-stdio__add", {"a": 2, "b": 40})
        quote = await client.call_tool("exchange-alpha__get_quote", {"symbol": "BTC-USD"})
        failed = await client.call_tool("helper-stdio__fail", {"message": "on purpose"})
    assert added.is_error is False and added.structured_content == {"total": 42}
    assert quote.is_error is False and quote.structured_content["symbol"] == "BTC-USD"
    assert failed.is_error is True and "on purpose" in text_of(failed)


@pytest.mark.parametrize("era", ERAS)
async def test_a_list_longer_than_a_page_comes_in_pages(endpoint, era):
    async with mcp_client(endpoint, **era) as client:
        first = await client.list_tools()
        tools = await all_tools(client)
        with pytest.raises(MCPError) as bad_cursor:
            await client.list_tools(cursor="not-a-cursor")
    assert len(first.tools) == 500 and first.next_cursor is not None
    many = [name for name in tools if name.startswith("many-tools__tool_")]
    assert len(many) == MANY - 1  # the server's echo is the first of its MANY
    assert "many-tools__echo" in tools and "helper-stdio__echo" in tools
    assert bad_cursor.value.code == -32602


@pytest.mark.parametrize("era", ERAS)
async def test_virtual_tools_are_listed_and_called_through_the_aggregate(endpoint, era):
    async with mcp_client(endpoint, **era) as client:
        tools = await all_tools(client)
        balanced = await client.call_tool("balanced__get_quote", {"arguments": {"symbol": "BTC-USD"}})
    async with mcp_client(endpoint, endpoint.viewer_token, **era) as client:
        refused = await client.call_tool("balanced__get_quote", {"arguments": {"symbol": "BTC-USD"}})
    assert {"fused__get_quote", "balanced__get_quote", "coordinator__arbitrage"} <= set(tools)
    assert balanced.is_error is False, text_of(balanced)
    assert balanced.structured_content is not None
    assert refused.is_error is True and "operator role" in text_of(refused)


async def test_bad_arguments_are_named_before_anything_is_sent(endpoint):
    async with mcp_client(endpoint) as client:
        result = await client.call_tool("helper-stdio__add", {"a": "two"})
    assert result.is_error is True
    assert "b: This field is required." in text_of(result) and "a:" in text_of(result)


async def test_an_unknown_tool_is_a_protocol_error_naming_it(endpoint):
    async with mcp_client(endpoint) as client:
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("helper-stdio__nope", {})
        with pytest.raises(MCPError) as unnamespaced:
            await client.call_tool("echo", {})
    assert unknown.value.code == -32602 and "helper-stdio has no tool 'nope'" in unknown.value.message
    assert "<server>__<tool>" in unnamespaced.value.message


async def test_a_server_that_is_down_answers_an_error_naming_it(endpoint):
    async with mcp_client(endpoint) as client:
        result = await client.call_tool("exchange-delta__get_quote", {"symbol": "BTC-USD"})
    assert result.is_error is True
    assert text_of(result).startswith("exchange-delta is offline")


async def test_a_call_past_the_servers_timeout_says_it_timed_out(endpoint):
    async with mcp_client(endpoint) as client:
        result = await client.call_tool("helper-stdio__slow", {"seconds": HELPER_TIMEOUT + 3})
    assert result.is_error is True
    assert text_of(result).startswith("helper-stdio did not answer in time") and "timed out" in text_of(result)


async def test_the_call_is_recorded_with_the_tokens_user(endpoint):
    async with mcp_client(endpoint) as client:
        result = await client.call_tool("helper-stdio__echo", {"text": "recorded"})
    assert text_of(result) == "recorded"

    def recorded() -> bool:
        return CallRecord.objects.filter(
            server__name="helper-stdio", operation="tools/call", target_name="echo", caller="oscar-operator", ok=True
        ).exists()

    await sync_to_async(wait_for)(recorded, what="the call recorded with oscar-operator as caller")


@pytest.mark.parametrize("era", ERAS)
async def test_a_resource_a_template_and_a_prompt_through_the_aggregate(endpoint, era):
    async with mcp_client(endpoint, **era) as client:
        resources = {resource.uri for resource in (await client.list_resources()).resources}
        templates = [template.uri_template for template in (await client.list_resource_templates()).resource_templates]
        greeting = await client.read_resource("mcp-orchestrator://helper-stdio/test://greeting")
        # The template as listed, expanded the way a client expands it, reads the upstream's own template.
        template = "mcp-orchestrator://conformance/test://template/{id}/data"
        assert template in templates
        data = await client.read_resource(template.replace("{id}", "42"))
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        greet = await client.get_prompt("helper-stdio__greet", {"name": "Ada"})
    assert "mcp-orchestrator://helper-stdio/test://greeting" in resources
    assert greeting.contents[0].text == "hello from well-behaved"
    assert greeting.contents[0].uri == "mcp-orchestrator://helper-stdio/test://greeting"
    assert '"id": "42"' in data.contents[0].text and data.contents[0].uri.startswith("mcp-orchestrator://conformance/")
    assert "helper-stdio__greet" in prompts and "exchange-alpha__explain_spread" in prompts
    assert "Ada" in greet.messages[0].content.text


async def test_completions_reach_the_server_under_its_own_names(endpoint):
    async with mcp_client(endpoint, endpoint.viewer_token) as client:
        prompt = await client.complete(
            types.PromptReference(name="conformance__test_prompt_with_arguments"), {"name": "arg1", "value": "x"}
        )
        template = await client.complete(
            types.ResourceTemplateReference(uri="mcp-orchestrator://conformance/test://template/{id}/data"),
            {"name": "id", "value": "4"},
        )
        with pytest.raises(MCPError) as unknown:
            await client.complete(types.PromptReference(name="no-such-server__x"), {"name": "a", "value": ""})
    # The conformance upstream completes nothing (its scenario only checks the answer's shape); that it was asked,
    # under its own names, is in its call records.
    assert prompt.completion.values == [] and template.completion.values == []
    assert "no server named 'no-such-server'" in unknown.value.message

    def asked() -> set[str]:
        return set(
            CallRecord.objects.filter(
                server__name="conformance", operation="completion/complete", caller="vera-viewer", ok=True
            ).values_list("target_name", flat=True)
        )

    await sync_to_async(wait_for)(
        lambda: {"test_prompt_with_arguments", "test://template/{id}/data"} <= asked(), what="both completions recorded"
    )


async def test_a_prompt_with_missing_arguments_is_refused_naming_them(endpoint):
    async with mcp_client(endpoint) as client:
        with pytest.raises(MCPError) as refused:
            await client.get_prompt("helper-stdio__greet", {})
    assert "name: This field is required." in refused.value.message


@pytest.mark.parametrize("era", ERAS)
async def test_a_viewer_lists_and_reads_but_does_not_call(endpoint, era):
    async with mcp_client(endpoint, endpoint.viewer_token, **era) as client:
        tools = (await all_tools(client)).values()
        greeting = await client.read_resource("mcp-orchestrator://helper-stdio/test://greeting")
        refused = await client.call_tool("helper-stdio__echo", {"text": "no"})
    assert any(tool.name == "helper-stdio__echo" for tool in tools)
    assert greeting.contents[0].text == "hello from well-behaved"
    assert refused.is_error is True and "operator role" in text_of(refused)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


async def test_no_token_or_a_bad_one_is_401_with_a_bearer_challenge(endpoint):
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28"}
    async with httpx2.AsyncClient() as http:
        anonymous = await http.post(endpoint.url, json=initialize, headers=headers)
        bad = await http.post(endpoint.url, json=initialize, headers={**headers, "Authorization": "Bearer not-a-token"})
        foreign = await http.post(
            endpoint.url,
            json=initialize,
            headers={**headers, "Authorization": f"Bearer {endpoint.operator_token}", "Origin": "http://evil.example"},
        )
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="mcp-orchestrator"'
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == 'Bearer realm="mcp-orchestrator", error="invalid_token"'
    assert "not-a-token" not in bad.text
    assert foreign.status_code == 403


async def test_the_sites_own_origin_is_allowed(endpoint):
    origin = endpoint.url.removesuffix("/mcp/")
    headers = {**ACCEPT, "Authorization": f"Bearer {endpoint.operator_token}", "Origin": origin}
    async with httpx2.AsyncClient() as http:
        answer = await http.post(endpoint.url, json=INITIALIZE, headers=headers)
        session = answer.headers.get("mcp-session-id", "")
        await http.delete(endpoint.url, headers={**headers, "Mcp-Session-Id": session})
    assert answer.status_code == 200, answer.text
    assert session and '"serverInfo"' in answer.text


async def test_a_session_answers_only_the_token_that_opened_it(endpoint):
    operator = {**ACCEPT, "Authorization": f"Bearer {endpoint.operator_token}"}
    viewer = {**ACCEPT, "Authorization": f"Bearer {endpoint.viewer_token}"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx2.AsyncClient() as http:
        opened = await http.post(endpoint.url, json=INITIALIZE, headers=operator)
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await http.post(endpoint.url, json=initialized, headers={**operator, **session})
        borrowed = await http.post(endpoint.url, json=listing, headers={**viewer, **session})
        own = await http.post(endpoint.url, json=listing, headers={**operator, **session})
        await http.delete(endpoint.url, headers={**operator, **session})
    assert opened.status_code == 200
    assert borrowed.status_code == 404, borrowed.text
    assert own.status_code == 200 and "helper-stdio__echo" in own.text


async def test_a_token_without_a_role_and_an_oversized_body_are_refused(endpoint):
    outsider = {**ACCEPT, "Authorization": f"Bearer {endpoint.outsider_token}"}
    operator = {**ACCEPT, "Authorization": f"Bearer {endpoint.operator_token}", "Content-Type": "application/json"}
    too_big = b" " * (settings.MCP_ENDPOINT_MAX_BODY_BYTES + 1)
    async with httpx2.AsyncClient() as http:
        no_role = await http.post(endpoint.url, json=INITIALIZE, headers=outsider)
        oversized = await http.post(endpoint.url, content=too_big, headers=operator)
        elsewhere = await http.post(endpoint.url + "elsewhere", json=INITIALIZE, headers=operator)
    assert no_role.status_code == 403 and "viewer role" in no_role.text
    assert oversized.status_code == 413
    assert elsewhere.status_code == 404


async def _register_exchange(name: str) -> None:
    await sync_to_async(register_exchange)(name)


async def test_tools_list_changed_arrives_when_a_server_comes_online_2026_era(endpoint):
    async with mcp_client(endpoint) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            await _register_exchange("exchange-beta")
            with anyio.fail_after(30):
                event = await subscription.__anext__()
            assert isinstance(event, ToolsListChanged)
        tools = await all_tools(client)
    assert "exchange-beta__get_quote" in tools


async def test_tools_list_changed_arrives_when_a_servers_own_tools_change(endpoint):
    async with mcp_client(endpoint) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            # The upstream adds a tool and says so; the fleet discovers it again; /mcp/ tells its listeners.
            await client.call_tool("helper-stdio__grow_tools", {})
            with anyio.fail_after(30):
                assert isinstance(await subscription.__anext__(), ToolsListChanged)
                while "helper-stdio__grown" not in await all_tools(client):  # an unrelated change came first
                    assert isinstance(await subscription.__anext__(), ToolsListChanged)
        grown = await client.call_tool("helper-stdio__grown", {})
    assert text_of(grown) == "grown"


async def test_tools_list_changed_arrives_when_a_server_comes_online_2025_era(endpoint):
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with mcp_client(endpoint, mode="legacy", message_handler=on_message) as client:
        await client.list_tools()  # the session is open (and its GET stream) before the change
        await _register_exchange("exchange-gamma")
        with anyio.fail_after(30):
            await changed.wait()
        tools = await all_tools(client)
    assert "exchange-gamma__get_quote" in tools
