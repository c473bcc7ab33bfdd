"""The virtual tools as an agent meets them: an SDK `Client` over Streamable HTTP on `/mcp/` (the site served by a
real uvicorn, tests/mcp_endpoint/live_server.py) with a Bearer token, demo exchanges behind it over the real
protocol. The SDK client checks each structured result against the tool's declared output schema."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from rest_framework.authtoken.models import Token

from fusion.models import FusionRun
from registry.models import Server, ServerStatus
from tests.exchanges import register_exchange
from tests.mcp_endpoint.live_server import serving
from tests.mcp_endpoint.test_virtual_tools import fresh_catalogue, stop_hosted, wait_offered  # noqa: F401
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ["bid", "ask", "last"]


def agent(base_url: str, key: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(f"{base_url}/mcp/", http_client=http), read_timeout_seconds=60)


def run_as_agent(base_url: str, key: str, work: Any) -> Any:
    async def session() -> Any:
        async with agent(base_url, key) as client:
            return await work(client)

    return asyncio.run(session())


def test_an_agent_fuses_quotes_with_beta_excluded_and_is_failed_over_from_a_killed_replica(
    live_fleet, operator_user, viewer_user
):
    for name, profile in (("ex-alpha", "alpha"), ("ex-beta", "beta"), ("ex-gamma", "gamma")):
        register_exchange(name, profile=profile)
    register_exchange("rep-fast", "--latency-ms", "1", server_type="replica")
    register_exchange("rep-slow", "--latency-ms", "300", server_type="replica")
    wait_offered(live_fleet, "ex-alpha", "ex-beta", "ex-gamma", "rep-fast", "rep-slow")
    operator_key = Token.objects.create(user=operator_user).key
    viewer_key = Token.objects.create(user=viewer_user).key
    quote = {"arguments": {"symbol": "BTC-USD"}}

    async def fuse_without_beta(client: Client) -> Any:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"fused__get_quote", "balanced__get_quote", "coordinator__arbitrage"} <= set(listed)
        assert listed["fused__get_quote"].output_schema["required"]
        fused = await client.call_tool(
            "fused__get_quote",
            {**quote, "servers": ["ex-alpha", "ex-gamma"], "fields": FIELDS, "quorum": 2},
        )
        refused = await client.call_tool("fused__get_quote", {**quote, "server_type": "exchange", "strategy": "nope"})
        # The balancer learns which replica is faster (each asked once by name).
        for server in ("rep-fast", "rep-slow", "rep-fast"):
            learned = await client.call_tool("balanced__get_quote", {**quote, "servers": [server]})
            assert learned.is_error is False, learned
        return fused, refused

    async def viewer_call(client: Client) -> Any:
        return await client.call_tool("fused__get_quote", {**quote, "server_type": "exchange"})

    async def balanced_quote(client: Client) -> Any:
        return await client.call_tool("balanced__get_quote", {**quote, "server_type": "replica"})

    with serving() as base_url:
        fused, refused = run_as_agent(base_url, operator_key, fuse_without_beta)
        assert fused.is_error is False, fused
        answer = fused.structured_content
        assert {row["server"]: row["state"] for row in answer["sources"]} == {"ex-alpha": "used", "ex-gamma": "used"}
        assert answer["quorum_met"] is True and set(answer["value"]) == set(FIELDS)
        assert FusionRun.objects.get(pk=answer["run_id"]).caller == operator_user.username  # the token's user
        assert refused.is_error is True and refused.content[0].text.startswith("strategy: ")
        assert "'nope'" in refused.content[0].text

        runs = FusionRun.objects.count()
        as_viewer = run_as_agent(base_url, viewer_key, viewer_call)
        assert as_viewer.is_error is True and "operator" in as_viewer.content[0].text
        assert FusionRun.objects.count() == runs

        stop_hosted("rep-fast")
        balanced = run_as_agent(base_url, operator_key, balanced_quote)
        assert balanced.is_error is False, balanced
        routed = balanced.structured_content
        assert routed["server"] == "rep-slow" and routed["result"]["symbol"] == "BTC-USD"
        assert routed["attempts"][-1] == {**routed["attempts"][-1], "server": "rep-slow", "ok": True}
        assert all(a["server"] == "rep-fast" and not a["ok"] for a in routed["attempts"][:-1])


def test_balanced_get_quote_stays_listed_and_answers_from_the_other_replica_once_health_calls_one_offline(
    live_fleet, operator_user
):
    """The virtual tools come from every enabled server, whatever its status: a replica that health has called
    offline takes its own `<server>__<tool>` tools off the list, not balanced__/fused__, which then answer from the
    replica that is left (the down one reported, not asked in vain)."""
    register_exchange("rep-up", server_type="replica")
    register_exchange("rep-down", server_type="replica")
    wait_offered(live_fleet, "rep-up", "rep-down")
    key = Token.objects.create(user=operator_user).key
    quote = {"arguments": {"symbol": "BTC-USD"}}

    async def listed(client: Client) -> set[str]:
        return {tool.name for tool in (await client.list_tools()).tools}

    async def listed_and_called(client: Client) -> tuple[set[str], Any, Any]:
        names = await listed(client)
        balanced = await client.call_tool("balanced__get_quote", {**quote, "timeout_seconds": 10})
        fused = await client.call_tool("fused__get_quote", {**quote, "fields": FIELDS, "quorum": 1})
        return names, balanced, fused

    with serving() as base_url:
        before = run_as_agent(base_url, key, listed)
        assert {"balanced__get_quote", "fused__get_quote", "rep-up__get_quote", "rep-down__get_quote"} <= before

        stop_hosted("rep-down")
        wait_for(
            lambda: Server.objects.get(name="rep-down").status == ServerStatus.OFFLINE,
            what="health calling rep-down offline",
        )
        names, balanced, fused = run_as_agent(base_url, key, listed_and_called)

    # Its own tools are gone (the namespaced list is the servers that can answer now)...
    assert "rep-down__get_quote" not in names and "rep-up__get_quote" in names
    # ...the virtual ones stay, and answer from the replica that is left.
    assert {"balanced__get_quote", "fused__get_quote"} <= names
    assert balanced.is_error is False, balanced
    routed = balanced.structured_content
    assert routed["server"] == "rep-up" and routed["result"]["symbol"] == "BTC-USD"
    assert all(attempt["server"] == "rep-up" for attempt in routed["attempts"] if attempt["ok"])
    assert fused.is_error is False, fused
    sources = {row["server"]: row for row in fused.structured_content["sources"]}
    assert sources["rep-up"]["state"] == "used"
    assert sources["rep-down"]["state"] != "used" and sources["rep-down"]["reason"]
