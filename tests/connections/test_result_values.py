"""The one reader of a result's value (`mcp_client.results.result_value`) on answers from a real MCP server (the
SDK's MCPServer, connected in-process), and the four kinds of caller reading through it: fusion's answers, health's
synthetic expectations, the pipeline's poll and resource routes, the coordinator's participants."""

from __future__ import annotations

from typing import TypedDict

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import TextContent

from coordinator.participant_calls import call_result_of
from fusion.answers import Invalid, document_of
from health.expectations import answer_problem
from mcp_client.results import (
    EmptyAnswer,
    NotJson,
    ResourceReadResult,
    ToolAnsweredError,
    ToolCallResult,
    result_value,
)
from pipeline.routes import PollFailed, route_poll, route_resource

server = MCPServer("values")


class Quote(TypedDict):
    symbol: str
    bid: float


@server.tool()
def structured_quote() -> Quote:
    """Typed: the SDK gives structured content (and the same JSON as text)."""
    return {"symbol": "BTC-USD", "bid": 100.0}


@server.tool()
def json_text_quote() -> dict:
    """Untyped dict: only JSON text, no structured content."""
    return {"symbol": "BTC-USD", "bid": 101.0, "reservation_id": "r-7"}


@server.tool(structured_output=False)
def plain_text() -> str:
    return "market closed"


@server.tool(structured_output=False)
def blank() -> str:
    return "   "


@server.tool()
def quote_with_a_note() -> list[TextContent]:
    return [
        TextContent(type="text", text='{"symbol": "BTC-USD", "bid": 102.0}'),
        TextContent(type="text", text="prices are delayed by 15 minutes"),
    ]


@server.tool(structured_output=False)
def refuses() -> str:
    raise ToolError("unknown symbol XYZ")


@server.resource("quote://btc")
def btc_quote() -> str:
    return '{"symbol": "BTC-USD", "bid": 103.0}'


@server.resource("note://today")
def note() -> str:
    return "no trading today"


async def call(tool: str) -> ToolCallResult:
    async with Client(server, read_timeout_seconds=10) as client:
        return ToolCallResult.from_sdk(await client.call_tool(tool, {}))


async def read(uri: str) -> ResourceReadResult:
    async with Client(server, read_timeout_seconds=10) as client:
        return ResourceReadResult.from_sdk(uri, await client.read_resource(uri))


async def test_structured_content_is_the_value():
    result = await call("structured_quote")
    assert result.structured_content is not None
    assert result_value(result) == {"symbol": "BTC-USD", "bid": 100.0}


async def test_without_structured_content_the_value_is_the_json_text():
    result = await call("json_text_quote")
    assert result.structured_content is None
    assert result_value(result) == {"symbol": "BTC-USD", "bid": 101.0, "reservation_id": "r-7"}


async def test_only_the_first_text_content_is_the_value():
    assert result_value(await call("quote_with_a_note")) == {"symbol": "BTC-USD", "bid": 102.0}


async def test_a_resource_value_is_its_json_text():
    assert result_value(await read("quote://btc")) == {"symbol": "BTC-USD", "bid": 103.0}


async def test_no_value_is_named():
    with pytest.raises(ToolAnsweredError, match="the tool answered with an error: .*unknown symbol XYZ") as error:
        result_value(await call("refuses"))
    assert "unknown symbol XYZ" in error.value.text
    with pytest.raises(NotJson, match="the answer is not JSON: 'market closed'") as not_json:
        result_value(await call("plain_text"))
    assert not_json.value.text == "market closed"
    with pytest.raises(EmptyAnswer, match="the answer is empty"):
        result_value(await call("blank"))
    with pytest.raises(NotJson):
        result_value(await read("note://today"))


async def test_fusion_reads_values_and_fuses_plain_text_as_text():
    assert document_of(await call("json_text_quote"))["bid"] == 101.0
    assert document_of(await call("quote_with_a_note"))["bid"] == 102.0
    assert document_of(await call("plain_text")) == "market closed"
    with pytest.raises(Invalid, match="the tool answered with an error"):
        document_of(await call("refuses"))
    with pytest.raises(Invalid, match="the answer is empty"):
        document_of(await call("blank"))


async def test_health_expectations_read_the_same_value():
    expect = {"path": "bid", "op": "gt", "value": 0}
    assert answer_problem("json_text_quote", expect, await call("json_text_quote")) is None
    assert answer_problem("quote_with_a_note", expect, await call("quote_with_a_note")) is None
    assert answer_problem("refuses", None, await call("refuses")).startswith("refuses answered an error: ")
    assert answer_problem("blank", expect, await call("blank")) == "blank: the answer is empty"
    assert answer_problem("plain_text", expect, await call("plain_text")) == "plain_text: bid is missing"
    contains = {"path": "", "op": "contains", "value": "closed"}
    assert answer_problem("plain_text", contains, await call("plain_text")) is None  # a text answer, read as text


async def test_pipeline_routes_read_the_same_value():
    polled = route_poll("values", "quote_with_a_note", None, await call("quote_with_a_note"))
    assert polled.payload["result"] == {"symbol": "BTC-USD", "bid": 102.0}
    quote = route_poll("values", "json_text_quote", "quotes.BTC-USD", await call("json_text_quote"))
    assert quote.kind == "quote" and quote.payload["bid"] == 101.0
    assert route_poll("values", "plain_text", None, await call("plain_text")).payload["result"] == "market closed"
    with pytest.raises(PollFailed, match="refuses answered an error: "):
        route_poll("values", "refuses", None, await call("refuses"))
    resource = route_resource("values", "quote://btc", await read("quote://btc"))
    assert resource.payload == {"uri": "quote://btc", "json": {"symbol": "BTC-USD", "bid": 103.0}}
    text = route_resource("values", "note://today", await read("note://today"))
    assert text.payload == {"uri": "note://today", "text": "no trading today", "truncated": False}


async def test_a_participant_answering_json_text_gives_its_fields_to_the_transaction():
    # `$result.reservation_id` in a saga's compensation reads this; it was {} for a tool without structured content.
    acted = call_result_of(await call("json_text_quote"))
    assert acted.ok and acted.result == {"symbol": "BTC-USD", "bid": 101.0, "reservation_id": "r-7"}
    refused = call_result_of(await call("refuses"))
    assert not refused.ok and "unknown symbol XYZ" in refused.error
    assert call_result_of(await call("plain_text")) == call_result_of(await call("blank"))  # acted, nothing to read
