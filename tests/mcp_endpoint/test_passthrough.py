"""`/mcp/servers/<name>/`, one fleet server passed through, with the SDK's own Client over real HTTP against a
running orchestrator (tests/mcp_endpoint/passthrough_fleet.py): names and content as the server has them, progress,
log entries, elicitation, sampling, roots and resource updates relayed between the server and the agent, in both
protocol eras on either side; the errors of a server that is down, disabled or unknown; roles; the call records.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from asgiref.sync import sync_to_async
from mcp import Client, MCPError
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPDeprecationWarning

from fleet import calls as fleet_calls
from registry.models import CallRecord
from tests.mcp_endpoint.passthrough_fleet import Orchestrator, passthrough_client, running_orchestrator
from tests.waiting import wait_for

# Agent eras: the SDK Client's default (2026-07-28 against our SDK server) and the handshake (2025-11-25).
ERAS = [pytest.param({}, id="agent-2026"), pytest.param({"mode": "legacy"}, id="agent-2025")]


# The module's fleet lives as long as the module: the suite's per-test teardowns would stop it after the first test.
@pytest.fixture(autouse=True)
def _close_live_sessions() -> Iterator[None]:
    yield


@pytest.fixture(autouse=True)
def _retire_hosted_exchanges() -> Iterator[None]:
    yield


@pytest.fixture(scope="module")
def orchestrator(django_db_setup, django_db_blocker) -> Iterator[Orchestrator]:  # type: ignore[no-untyped-def]
    with running_orchestrator(django_db_blocker) as running:
        yield running


def text_of(result: types.CallToolResult | types.GetPromptResult) -> str:
    if isinstance(result, types.GetPromptResult):
        return "\n".join(m.content.text for m in result.messages if isinstance(m.content, types.TextContent))
    return "\n".join(item.text for item in result.content if isinstance(item, types.TextContent))


def upstream_subscriptions(name: str) -> frozenset[str]:
    """The resource URIs the fleet's shared session to `name` keeps subscribed (read from any thread)."""
    connection = fleet_calls.fleet_runtime().hub.get(name)
    assert connection is not None
    return connection.subscriptions


def through(orchestrator: Orchestrator, name: str, *, viewer: bool = False, **options: Any) -> Any:
    token = orchestrator.viewer_token if viewer else orchestrator.operator_token
    return passthrough_client(orchestrator.passthrough_url(name), token, **options)


# -- names, lists and content, exactly the server's --------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_it_offers_exactly_the_servers_own_tools_resources_and_prompts(orchestrator, era):
    async with Client(orchestrator.conformance_url, cache=None) as direct:
        tools = await direct.list_tools()
        resources = await direct.list_resources()
        templates = await direct.list_resource_templates()
        prompts = await direct.list_prompts()
    async with through(orchestrator, "conformance", **era) as client:
        assert (await client.list_tools()).tools == tools.tools
        assert (await client.list_resources()).resources == resources.resources
        assert (await client.list_resource_templates()).resource_templates == templates.resource_templates
        assert (await client.list_prompts()).prompts == prompts.prompts
        assert any(tool.name == "test_simple_text" for tool in tools.tools), "names without a prefix"


@pytest.mark.parametrize("era", ERAS)
async def test_content_comes_back_as_the_server_sent_it(orchestrator, era):
    async with Client(orchestrator.conformance_url, cache=None) as direct:
        expected = await direct.call_tool("test_multiple_content_types", {})
        expected_read = await direct.read_resource("test://static-binary")
        expected_prompt = await direct.get_prompt("test_prompt_with_image")
        expected_failure = await direct.call_tool("test_error_handling", {})
    async with through(orchestrator, "conformance", **era) as client:
        mixed = await client.call_tool("test_multiple_content_types", {})
        read = await client.read_resource("test://static-binary")
        prompt = await client.get_prompt("test_prompt_with_image")
        completion = await client.complete(
            types.PromptReference(type="ref/prompt", name="test_prompt_with_arguments"), {"name": "arg1", "value": "a"}
        )
        failing = await client.call_tool("test_error_handling", {})
    assert mixed.content == expected.content
    assert [type(item) for item in mixed.content] == [types.TextContent, types.ImageContent, types.EmbeddedResource]
    assert read.contents == expected_read.contents
    assert prompt.messages == expected_prompt.messages
    assert completion.completion.values == []
    assert failing.is_error is True and failing.content == expected_failure.content


# -- progress and log entries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    "server, tool, arguments",
    [
        ("conformance", "test_tool_with_progress", {}),
        ("everything", "trigger-long-running-operation", {"duration": 1, "steps": 4}),
    ],
)
async def test_progress_reaches_the_agent_in_order_before_the_result(orchestrator, era, server, tool, arguments):
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with through(orchestrator, server, **era) as client:
        result = await client.call_tool(tool, arguments, progress_callback=on_progress)
    assert result.is_error is False, text_of(result)
    assert len(seen) >= 3, seen
    assert [step[0] for step in seen] == sorted(step[0] for step in seen), "in the order the server sent them"
    if server == "conformance":
        assert seen == [
            (0, 100, "Completed step 0 of 100"),
            (50, 100, "Completed step 50 of 100"),
            (100, 100, "Completed step 100 of 100"),
        ]


@pytest.mark.parametrize("era", ERAS)
async def test_the_servers_log_entries_during_a_call_reach_the_agent(orchestrator, era):
    entries: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        entries.append(params)

    # A 2026 agent asks for log entries per request (the Client's log_level); a 2025 one gets them all.
    options = {"log_level": "debug"} if not era else {}
    async with through(orchestrator, "conformance", logging_callback=on_log, **era, **options) as client:
        result = await client.call_tool("test_tool_with_logging", {})
    assert text_of(result) == "Tool with logging executed successfully"
    assert [entry.data for entry in entries] == [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ]
    assert {entry.level for entry in entries} == {"info"}


async def test_a_handshake_era_agents_log_level_holds_for_what_it_is_sent(orchestrator):
    entries: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        entries.append(params)

    async with through(orchestrator, "conformance", logging_callback=on_log, mode="legacy") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.set_logging_level("warning")
        quiet = await client.call_tool("test_tool_with_logging", {})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.set_logging_level("info")
        await client.call_tool("test_tool_with_logging", {})
    assert text_of(quiet) == "Tool with logging executed successfully"
    assert [entry.data for entry in entries] == [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ], "the info entries of the second call only"


# -- the server's requests to its client, relayed ---------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_an_elicitation_reaches_the_agent_and_its_answer_the_server_on_the_2026_wire(orchestrator, era):
    asked: list[types.ElicitRequestParams] = []

    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept", content={"response": "relayed by the orchestrator"})

    async with through(orchestrator, "conformance", elicitation_callback=answer, **era) as client:
        result = await client.call_tool("test_elicitation", {"message": "Shall we?"})
    assert len(asked) == 1 and asked[0].message == "Shall we?"
    assert text_of(result) == ('User response: action=accept, content={"response":"relayed by the orchestrator"}')


@pytest.mark.parametrize("era", ERAS)
async def test_an_agent_is_never_asked_for_what_it_did_not_declare(orchestrator, era):
    # No elicitation callback: this agent declares no elicitation. The server saw the fleet's capabilities (all of
    # them), so the pass-through answers the error the server owed this agent.
    async with through(orchestrator, "conformance", **era) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("test_elicitation", {"message": "Shall we?"})
    assert refused.value.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert refused.value.data == {"requiredCapabilities": {"elicitation": {}}}
    assert "conformance asks the client for elicitation" in refused.value.message


async def test_an_elicitation_from_a_handshake_era_server_is_relayed_to_the_agent(orchestrator):
    asked: list[types.ElicitRequestParams] = []

    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept", content={"name": "Ada Lovelace"})

    async with through(orchestrator, "everything", elicitation_callback=answer, mode="legacy") as client:
        result = await client.call_tool("trigger-elicitation-request", {})
    assert len(asked) == 1
    assert "Ada Lovelace" in text_of(result) and result.is_error is False


async def test_with_two_agents_in_flight_a_servers_request_is_declined_not_guessed(orchestrator):
    """A handshake-era server's request does not say which call it belongs to: with calls of two agents in flight,
    the relay declines it (and records why) rather than ask the wrong agent."""
    first_asked = anyio.Event()
    release_first = anyio.Event()
    second_asked: list[types.ElicitRequestParams] = []
    results: dict[str, types.CallToolResult] = {}

    async def first_answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        first_asked.set()
        await release_first.wait()
        return types.ElicitResult(action="accept", content={"name": "First Agent"})

    async def second_answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        second_asked.append(params)
        return types.ElicitResult(action="accept", content={"name": "Second Agent"})

    async with (
        through(orchestrator, "everything", elicitation_callback=first_answer, mode="legacy") as first,
        through(orchestrator, "everything", elicitation_callback=second_answer, mode="legacy") as second,
    ):

        async def call_first() -> None:
            results["first"] = await first.call_tool("trigger-elicitation-request", {})

        async with anyio.create_task_group() as group:
            group.start_soon(call_first)
            with anyio.fail_after(15):
                await first_asked.wait()  # the first call is in flight, its agent being asked
            results["second"] = await second.call_tool("trigger-elicitation-request", {})
            release_first.set()

    assert second_asked == [], "the second agent was not asked: the request could have been the first one's"
    assert "declined" in text_of(results["second"])
    assert "First Agent" in text_of(results["first"])

    def recorded() -> bool:
        declined = CallRecord.objects.filter(server__name="everything", operation="elicitation/create")
        return declined.filter(error_message__contains="calls of 2 agents are in flight").exists()

    await sync_to_async(wait_for)(recorded, what="the declined request recorded with the reason")


async def test_a_2026_agent_is_not_asked_mid_call_by_a_handshake_era_server(orchestrator):
    """A 2026-07-28 session has no channel for requests during a call: the server's elicitation is declined, with
    the reason recorded, and the agent gets the server's answer to that."""
    asked: list[types.ElicitRequestParams] = []

    async def answer(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="accept", content={"name": "never asked"})

    async with through(orchestrator, "everything", elicitation_callback=answer) as client:
        result = await client.call_tool("trigger-elicitation-request", {})
    assert asked == [] and "declined" in text_of(result)

    def recorded() -> bool:
        declined = CallRecord.objects.filter(server__name="everything", operation="elicitation/create")
        return declined.filter(error_message__contains="cannot take requests during a call").exists()

    await sync_to_async(wait_for)(recorded, what="the declined request recorded with the reason")


@pytest.mark.parametrize("era", ERAS)
async def test_sampling_is_relayed_to_the_agent(orchestrator, era):
    async def sample(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="Paris"), model="agent-model"
        )

    async with through(orchestrator, "conformance", sampling_callback=sample, **era) as client:
        result = await client.call_tool("test_sampling", {"prompt": "Capital of France?"})
    assert text_of(result) == "LLM response: Paris"


@pytest.mark.parametrize("era", ERAS)
async def test_a_roots_request_is_relayed_to_the_agent(orchestrator, era):
    async def roots(context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///agent/workspace", name="workspace")])

    async with through(orchestrator, "conformance", list_roots_callback=roots, **era) as client:
        result = await client.call_tool("test_input_required_result_list_roots", {})
    assert text_of(result) == "Client exposed 1 root(s)."


async def test_sampling_from_a_handshake_era_server_is_relayed(orchestrator):
    async def sample(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled by the agent"), model="m"
        )

    async with through(orchestrator, "everything", sampling_callback=sample, mode="legacy") as client:
        sampled = await client.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 10})
    assert "sampled by the agent" in text_of(sampled)


# -- resource subscriptions ------------------------------------------------------------------------------------------


async def test_a_subscribed_agent_gets_the_servers_resource_updates_2025_era(orchestrator):
    updated = anyio.Event()
    uris: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            uris.append(str(message.params.uri))
            updated.set()

    async with through(orchestrator, "conformance", message_handler=on_message, mode="legacy") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.subscribe_resource("test://watched-resource")
        await client.call_tool("test_update_watched_resource", {"content": "changed once"})
        with anyio.fail_after(15):
            await updated.wait()
        assert uris == ["test://watched-resource"]
        read = await client.read_resource("test://watched-resource")
        assert read.contents[0].text == "changed once"  # type: ignore[union-attr]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.unsubscribe_resource("test://watched-resource")
    # The fleet had it subscribed before (the pipeline watches every listed resource): it keeps it.
    assert "test://watched-resource" in upstream_subscriptions("conformance")


async def test_a_listening_agent_gets_the_servers_resource_updates_2026_era(orchestrator):
    async with (
        through(orchestrator, "conformance") as client,
        client.listen(resource_subscriptions=["test://watched-resource"]) as subscription,
    ):
        async with through(orchestrator, "conformance") as other:
            await other.call_tool("test_update_watched_resource", {"content": "changed twice"})
        with anyio.fail_after(15):
            async for event in subscription:
                if getattr(event, "uri", None) == "test://watched-resource":
                    break


async def test_the_servers_list_changes_reach_the_agents(orchestrator):
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with (
        through(orchestrator, "conformance", message_handler=on_message, mode="legacy") as legacy,
        through(orchestrator, "conformance") as modern,
        modern.listen(tools_list_changed=True) as events,
    ):
        await legacy.list_tools()  # the pass-through knows this session from its first request
        await legacy.call_tool("test_trigger_tool_change", {})
        with anyio.fail_after(15):
            await changed.wait()
            async for event in events:
                if type(event).__name__ == "ToolsListChanged":
                    break


async def test_a_subscription_made_for_agents_is_dropped_when_no_agent_wants_it(orchestrator):
    legacy_uri, modern_uri = "test://template/7/data", "test://template/8/data"  # nobody else subscribes these
    assert not {legacy_uri, modern_uri} & upstream_subscriptions("conformance")
    async with through(orchestrator, "conformance", mode="legacy") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.subscribe_resource(legacy_uri)
            assert legacy_uri in upstream_subscriptions("conformance")
            await client.unsubscribe_resource(legacy_uri)
    assert legacy_uri not in upstream_subscriptions("conformance")

    async with through(orchestrator, "conformance") as client, client.listen(resource_subscriptions=[modern_uri]):
        assert modern_uri in upstream_subscriptions("conformance")
    await sync_to_async(wait_for)(
        lambda: modern_uri not in upstream_subscriptions("conformance"),
        what="the subscription dropped once the agent stopped listening",
    )


# -- errors and roles --------------------------------------------------------------------------------------------------


async def test_a_server_that_is_down_answers_an_error_that_says_so(orchestrator):
    async with through(orchestrator, "exchange-delta") as client:
        with pytest.raises(MCPError) as down:
            await client.call_tool("get_quote", {"symbol": "BTC-USD"})
    assert down.value.message.startswith("exchange-delta is offline: ")


async def test_a_server_that_hangs_answers_a_timeout_within_its_request_timeout(orchestrator):
    async with through(orchestrator, "hanging") as client:
        started = anyio.current_time()
        with pytest.raises(MCPError) as hung:
            await client.call_tool("hang", {})
        elapsed = anyio.current_time() - started
        assert (await client.call_tool("echo", {"text": "still here"})).content[0].text == "still here"  # type: ignore[union-attr]
    assert hung.value.code == types.REQUEST_TIMEOUT
    assert hung.value.message == "hanging did not answer within 1 s"
    assert elapsed < 5, "bounded by the server's request timeout (1 s), not the agent's"


@pytest.mark.parametrize("era", ERAS)
async def test_an_agent_that_gives_up_cancels_its_call_on_the_server(orchestrator, era):
    # The agent's own timeout (0.3 s) comes before the server's request timeout (1 s): the agent's cancellation
    # travels on to the server, and the call is recorded as cancelled, not as timed out.
    since = datetime.now(UTC)
    async with through(orchestrator, "hanging", **era) as client:
        with pytest.raises(MCPError):
            await client.call_tool("hang", {}, read_timeout_seconds=0.3)

    def recorded() -> bool:
        calls = CallRecord.objects.filter(server__name="hanging", operation="tools/call", target_name="hang")
        return calls.filter(caller=orchestrator.operator, started_at__gte=since, error_kind="cancelled").exists()

    await sync_to_async(wait_for)(recorded, what="the call recorded as cancelled by the agent")


async def test_a_disabled_server_answers_an_error_that_says_so(orchestrator):
    async with through(orchestrator, "parked") as client:
        with pytest.raises(MCPError) as disabled:
            await client.list_tools()
    assert "parked is disabled" in disabled.value.message


async def test_an_unknown_server_is_a_404_before_any_session(orchestrator):
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            orchestrator.passthrough_url("no-such-server"),
            headers={"Authorization": f"Bearer {orchestrator.operator_token}", "Accept": "application/json"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
    assert response.status_code == 404
    assert "no-such-server" in response.text
    assert "mcp-session-id" not in response.headers


async def test_a_viewer_lists_and_reads_but_may_not_call_tools(orchestrator):
    async with through(orchestrator, "conformance", viewer=True) as client:
        assert (await client.list_tools()).tools
        read = await client.read_resource("test://static-text")
        assert read.contents[0].text == "This is the content of the static text resource."  # type: ignore[union-attr]
        with pytest.raises(MCPError) as refused:
            await client.call_tool("test_simple_text", {})
    assert "pat-operator" not in refused.value.message
    assert "val-viewer is a viewer" in refused.value.message and "not call its tools" in refused.value.message


async def test_no_token_is_a_401(orchestrator):
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            orchestrator.passthrough_url("conformance"),
            headers={"Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")


async def test_every_call_is_recorded_with_the_agents_username(orchestrator):
    async with through(orchestrator, "conformance") as client:
        await client.call_tool("test_simple_text", {})

    def recorded() -> bool:
        return CallRecord.objects.filter(
            server__name="conformance",
            operation="tools/call",
            target_name="test_simple_text",
            caller=orchestrator.operator,
        ).exists()

    await sync_to_async(wait_for)(recorded, what="the call recorded with the agent's username")
