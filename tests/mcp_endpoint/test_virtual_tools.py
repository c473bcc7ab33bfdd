"""The virtual tools of /mcp/ (mcp_endpoint/virtual_tools.py) against a real fleet: demo exchanges over the real
protocol, the fleet application running as `serve` runs it; the functions called directly (the endpoint's own tests
call them through an SDK client)."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import jsonschema
import pytest
from asgiref.sync import async_to_sync

from coordinator.models import Operation
from fusion.models import FusionRun
from mcp_client import Deadline
from mcp_endpoint import virtual_tools
from mcp_endpoint.fleet_catalogue import OfferedServer, enabled_servers, forget_cached, offered_servers
from mcp_endpoint.virtual_tools import call_virtual_tool, is_virtual
from orchestrator_site.async_api import Caller
from registry.models import Server
from registry.permissions import Role
from registry.services import server_create
from tests.connections.helpers import TIME_SERVER
from tests.exchanges import EXCHANGE_HOST, register_exchange
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ["bid", "ask", "last"]
EXCHANGES = ("ex-alpha", "ex-beta", "ex-gamma")


# Wrong in every way JSON allows: each one an isError result naming what is wrong, never an internal failure.
BAD_CALLS = [
    ("fused__get_quote", {"arguments": "BTC-USD"}, "arguments"),
    ("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "quorum": "2"}, "quorum"),
    ("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "quorum": 4}, "quorum"),  # three can be asked
    ("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "fields": [1]}, "fields"),
    ("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "timeout_seconds": 1e308}, "timeout_seconds"),
    ("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "servers": "ex-alpha,solo"}, "servers"),
    ("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "servers": [1, 2]}, "servers"),
    ("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "servers": ["ex-alpha", "ex-alpha"]}, "servers"),
    ("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "options": {"threshold": "high"}}, "threshold"),
    ("fused__get_quote", {"arguments": None}, "arguments"),
    ("balanced__get_quote", {"arguments": {"symbol": "BTC-USD"}, "idempotency_key": 5}, "idempotency_key"),
    ("balanced__get_quote", {"arguments": {"symbol": "BTC-USD"}, "timeout_seconds": -1}, "timeout_seconds"),
    ("balanced__get_quote", {"arguments": {"symbol": ["BTC-USD"]}}, "symbol"),
    ("balanced__get_quote", {"arguments": {"symbol": "BTC-USD"}, "servers": {"a": 1}}, "servers"),
    ("coordinator__arbitrage", {"symbols": [], "size": 1}, "symbols"),
    ("coordinator__arbitrage", {"symbols": ["BTC-USD"], "size": True}, "size"),
    ("coordinator__arbitrage", {"symbols": ["NOPE-USD"], "size": 1, "servers": ["ex-alpha", "ex-beta"]}, "symbols"),
    ("coordinator__arbitrage", {"symbols": ["BTC-USD"], "size": 1, "servers": ["clock", "ex-alpha"]}, "servers"),
    ("coordinator__execute_opportunity", {"operation_id": 1}, "not enabled"),
    ("nothing__at_all", {}, "Unknown tool"),
]


def caller_for(user: Any, role: Role = Role.OPERATOR) -> Caller:
    return Caller(user_id=user.pk, username=user.username, role=role)


def call(name: str, arguments: Any, caller: Caller, seconds: float = 30.0) -> Any:
    return async_to_sync(call_virtual_tool)(name, arguments, caller, deadline=Deadline.within(seconds))


def catalogue() -> list[OfferedServer]:
    return async_to_sync(offered_servers)()


def enabled() -> list[OfferedServer]:
    """What the virtual tools are built from (as /mcp/ lists them): every enabled server, whatever its status."""
    return async_to_sync(enabled_servers)()


def offering(*names: str, tool: str = "get_quote") -> bool:
    """Every named server offered by the catalogue (health has it online or degraded) with `tool` discovered."""
    found = {server.name for server in catalogue() if any(t.get("name") == tool for t in server.tools)}
    return set(names) <= found


def wait_offered(live_fleet: Any, *names: str, tool: str = "get_quote") -> None:
    live_fleet.request_reconcile()
    wait_for(lambda: offering(*names, tool=tool), what=f"{', '.join(names)} offered with {tool}")


def tools_by_name(servers: list[OfferedServer]) -> dict[str, Any]:
    return {tool.name: tool for tool in virtual_tools.virtual_tools(servers)}


def structured(result: Any) -> dict[str, Any]:
    """The result's structured content, checked to be what its text says."""
    assert result.structured_content is not None
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


def error_text(result: Any) -> str:
    assert result.is_error is True
    return result.content[0].text


def stop_hosted(server_name: str) -> None:
    """Stop one exchange of the exchange host now (the server stays registered: it is down)."""
    url = Server.objects.get(name=server_name).url
    key = url.split("/e/", 1)[1].split("/", 1)[0]
    request = urllib.request.Request(f"{url.split('/e/', 1)[0]}/exchanges/{key}", method="DELETE")
    with urllib.request.urlopen(request, timeout=30):
        pass
    EXCHANGE_HOST._made.remove(key)  # stopped already: not again after the test


@pytest.fixture(autouse=True)
def fresh_catalogue():
    forget_cached()
    yield
    forget_cached()


def test_three_exchanges_make_fused_balanced_and_arbitrage_tools_that_answer(live_fleet, operator_user, viewer_user):
    for name, profile in zip(EXCHANGES, ("alpha", "beta", "gamma"), strict=True):
        register_exchange(name, profile=profile)
    register_exchange("solo", server_type="lone")  # get_quote too, but the only server of its type
    server_create(name="clock", transport="stdio", command=str(TIME_SERVER), server_type="clock")
    wait_offered(live_fleet, *EXCHANGES, "solo")
    wait_offered(live_fleet, "clock", tool="get_current_time")

    tools = tools_by_name(enabled())
    # What three servers of one type offer together; nothing for the clock's tool, which one server offers.
    assert {"fused__get_quote", "balanced__get_quote", "fused__get_order_book", "coordinator__arbitrage"} <= set(tools)
    assert not [name for name in tools if "get_current_time" in name]
    assert all(is_virtual(name) for name in tools)
    # A tool that changes state is never fanned out; balanced only with an idempotency key.
    assert "fused__reserve_order" not in tools and "fused__confirm_order" not in tools
    assert "idempotency_key" in tools["balanced__reserve_order"].input_schema["required"]
    assert "idempotency_key" not in tools["balanced__get_quote"].input_schema.get("required", [])
    assert "coordinator__execute_opportunity" not in tools  # not unless an admin enables it
    fused = tools["fused__get_quote"]
    properties = fused.input_schema["properties"]
    assert properties["servers"]["items"]["enum"] == list(EXCHANGES)  # solo is of another type
    assert properties["server_type"]["enum"] == ["exchange"] and "server_type" not in fused.input_schema["required"]
    assert {"median", "majority", "priority"} <= set(properties["strategy"]["enum"])
    assert properties["arguments"]["properties"]["symbol"]["type"] == "string"  # the exchange's own schema
    assert fused.annotations.read_only_hint is True
    assert tools["balanced__get_quote"].annotations.read_only_hint is True  # copied from the exchange
    assert tools["balanced__reserve_order"].annotations.read_only_hint is False
    assert tools["coordinator__arbitrage"].input_schema["properties"]["servers"]["items"]["enum"] == [
        *EXCHANGES,
        "solo",
    ]
    for tool in tools.values():
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        jsonschema.Draft202012Validator.check_schema(tool.output_schema)

    operator = caller_for(operator_user)
    # Beta left out by naming the others: only they are asked, both used.
    result = call(
        "fused__get_quote",
        {"arguments": {"symbol": "BTC-USD"}, "servers": ["ex-alpha", "ex-gamma"], "fields": FIELDS, "quorum": 2},
        operator,
    )
    answer = structured(result)
    assert result.is_error is False, answer
    jsonschema.validate(answer, fused.output_schema)
    assert {row["server"]: row["state"] for row in answer["sources"]} == {"ex-alpha": "used", "ex-gamma": "used"}
    assert answer["quorum_met"] is True and answer["strategy"] == "median" and answer["explanation"]
    assert set(answer["value"]) == set(FIELDS) and 0 < answer["confidence"] <= 1
    run = FusionRun.objects.get(pk=answer["run_id"])
    assert run.caller == operator_user.username and run.sources_asked == 2

    # Bad input: an isError result naming the field, nothing asked.
    runs = FusionRun.objects.count()
    text = error_text(call("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "strategy": "nope"}, operator))
    assert text.startswith("strategy: ") and "'nope'" in text
    assert "servers" in error_text(
        call("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "servers": ["ex-alpha", "solo"]}, operator)
    )
    assert error_text(call("fused__get_quote", {"server_type": ["exchange"]}, operator)).startswith("server_type: ")
    assert "colour" in error_text(call("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "colour": 1}, operator))
    assert "arguments" in error_text(call("fused__get_quote", {"arguments": {"symbol": 7}}, operator))
    assert "Unknown tool" in error_text(call("fused__get_current_time", {}, operator))
    assert "changes state" in error_text(call("fused__reserve_order", {"arguments": {}}, operator))
    for name, arguments, named in BAD_CALLS:
        text = error_text(call(name, arguments, operator))
        assert named in text and "inside the orchestrator" not in text, (name, arguments, text)
    assert FusionRun.objects.count() == runs

    # Viewers call nothing (a fused run, an analysis are stored as the caller's).
    viewer = caller_for(viewer_user, Role.VIEWER)
    for name in ("fused__get_quote", "balanced__get_quote", "coordinator__arbitrage"):
        assert "operator" in error_text(call(name, {"arguments": {"symbol": "BTC-USD"}}, viewer))
    assert FusionRun.objects.count() == runs

    # The analysis: ranked opportunities and the stored operation.
    operations = Operation.objects.count()
    result = call(
        "coordinator__arbitrage",
        {"symbols": ["BTC-USD"], "size": 0.1, "servers": list(EXCHANGES), "min_profit_bps": -10_000},
        operator,
    )
    report = structured(result)
    assert result.is_error is False, report
    jsonschema.validate(report, tools["coordinator__arbitrage"].output_schema)
    assert len(report["opportunities"]) == 6  # every ordered pair of three, as min_profit_bps lets all through
    ranks = [opportunity["net_bps"] for opportunity in report["opportunities"]]
    assert ranks == sorted(ranks, reverse=True)
    stored = Operation.objects.get(pk=report["operation_id"])
    assert stored.kind == "arbitrage" and stored.created_by == operator_user.username
    assert Operation.objects.count() == operations + 1
    assert "size" in error_text(call("coordinator__arbitrage", {"symbols": ["BTC-USD"], "size": -1}, operator))

    # One of them down: still asked (by type), and its row says what happened to it.
    stop_hosted("ex-gamma")
    result = call("fused__get_quote", {"arguments": {"symbol": "BTC-USD"}, "fields": FIELDS}, operator)
    answer = structured(result)
    assert result.is_error is False, answer
    states = {row["server"]: row for row in answer["sources"]}
    assert states["ex-alpha"]["state"] == states["ex-beta"]["state"] == "used"
    assert states["ex-gamma"]["state"] in ("failed", "timed_out") and states["ex-gamma"]["reason"]
    assert "solo" not in states


def test_quorum_not_met_is_an_error_with_what_came_in(live_fleet, operator_user):
    register_exchange("ok-1")
    register_exchange("broken-1", "--error-rate", "1")  # answers its probes, fails every tool call
    wait_offered(live_fleet, "ok-1", "broken-1")
    result = call(
        "fused__get_quote",
        {"arguments": {"symbol": "BTC-USD"}, "fields": FIELDS, "quorum": 2, "timeout_seconds": 5},
        caller_for(operator_user),
    )
    answer = structured(result)
    assert result.is_error is True
    assert answer["quorum_met"] is False and answer["value"] is None and "quorum not met" in answer["error"]
    states = {row["server"]: row["state"] for row in answer["sources"]}
    assert states == {"ok-1": "used", "broken-1": "failed"}


def test_balanced_get_quote_is_answered_by_another_replica_when_one_is_stopped(live_fleet, operator_user):
    register_exchange("rep-fast", "--latency-ms", "1", server_type="replica")
    register_exchange("rep-slow", "--latency-ms", "300", server_type="replica")
    # get_quote in a second type too: which servers answer together must then be chosen.
    register_exchange("ex-1", server_type="exchange")
    register_exchange("ex-2", server_type="exchange")
    wait_offered(live_fleet, "rep-fast", "rep-slow", "ex-1", "ex-2")
    operator = caller_for(operator_user)
    tools = tools_by_name(enabled())
    balanced = tools["balanced__get_quote"]
    assert balanced.input_schema["properties"]["server_type"]["enum"] == ["exchange", "replica"]
    assert "server_type" in balanced.input_schema["required"]
    quote = {"arguments": {"symbol": "BTC-USD"}}
    assert error_text(call("balanced__get_quote", quote, operator)).startswith("server_type: Required")
    assert "idempotency_key" in error_text(
        call(
            "balanced__reserve_order",
            {"arguments": {"symbol": "BTC-USD", "side": "buy", "quantity": 0.01}, "server_type": "replica"},
            operator,
        )
    )

    # The balancer learns that rep-fast is the faster one...
    for server in ("rep-fast", "rep-slow", "rep-fast"):
        assert call("balanced__get_quote", {**quote, "servers": [server]}, operator).is_error is False
    # ...then it stops, and the call is answered by the other replica within the deadline.
    stop_hosted("rep-fast")
    result = call("balanced__get_quote", {**quote, "server_type": "replica", "timeout_seconds": 10}, operator)
    answer = structured(result)
    assert result.is_error is False, answer
    jsonschema.validate(answer, balanced.output_schema)
    assert answer["server"] == "rep-slow" and answer["result"]["symbol"] == "BTC-USD"
    assert answer["attempts"][-1]["server"] == "rep-slow" and answer["attempts"][-1]["ok"] is True
    assert all(a["server"] == "rep-fast" and not a["ok"] and a["error"] for a in answer["attempts"][:-1])
    stored = Operation.objects.get(pk=answer["operation_id"])
    assert stored.kind == "call" and stored.created_by == operator_user.username
    assert [step["state"] for step in stored.steps][-1] == "succeeded"


def test_execute_opportunity_is_offered_only_when_an_admin_enables_it(live_fleet, operator_user, settings):
    register_exchange("ex-a", profile="alpha")
    register_exchange("ex-b", profile="beta")
    wait_offered(live_fleet, "ex-a", "ex-b")
    operator = caller_for(operator_user)
    assert "coordinator__execute_opportunity" not in tools_by_name(enabled())
    assert "not enabled" in error_text(call("coordinator__execute_opportunity", {"operation_id": 1}, operator))

    settings.MCP_ENDPOINT_TRANSACTION_TOOLS = True
    assert "coordinator__execute_opportunity" in tools_by_name(enabled())
    report = structured(
        call("coordinator__arbitrage", {"symbols": ["BTC-USD"], "size": 0.01, "min_profit_bps": -10_000}, operator)
    )
    execute = {"operation_id": report["operation_id"], "opportunity": 0}
    assert "idempotency_key" in error_text(call("coordinator__execute_opportunity", execute, operator))
    first = call("coordinator__execute_opportunity", {**execute, "idempotency_key": "mcp-run-1"}, operator)
    transaction = structured(first)
    assert transaction["state"] in ("committed", "aborted", "in_doubt"), transaction
    assert transaction["created_by"] == operator_user.username and transaction["replayed"] is False
    again = structured(call("coordinator__execute_opportunity", {**execute, "idempotency_key": "mcp-run-1"}, operator))
    assert again["id"] == transaction["id"] and again["replayed"] is True


def test_the_callers_deadline_bounds_a_fused_and_a_balanced_call(live_fleet, operator_user):
    register_exchange("quick-1")
    register_exchange("quick-2")
    register_exchange("sluggish", "--latency-ms", "4000")
    wait_offered(live_fleet, "quick-1", "quick-2", "sluggish")
    operator = caller_for(operator_user)
    quote = {"arguments": {"symbol": "BTC-USD"}, "fields": FIELDS}

    started = time.monotonic()
    # The tool's own timeout (10 s) is more than the request has left: the deadline wins.
    result = call("fused__get_quote", {**quote, "timeout_seconds": 10}, operator, seconds=1.5)
    took = time.monotonic() - started
    answer = structured(result)
    assert result.is_error is False, answer
    assert took < 3.5  # not the sluggish source's 4 s
    states = {row["server"]: row["state"] for row in answer["sources"]}
    assert states == {"quick-1": "used", "quick-2": "used", "sluggish": "timed_out"}

    started = time.monotonic()
    result = call(
        "balanced__get_quote",
        {"arguments": {"symbol": "BTC-USD"}, "servers": ["sluggish"], "timeout_seconds": 10},
        operator,
        seconds=1.0,
    )
    assert time.monotonic() - started < 3.0
    answer = structured(result)
    assert result.is_error is True and answer["server"] is None
    assert [attempt["server"] for attempt in answer["attempts"]] == ["sluggish"]
    assert "timed out" in answer["attempts"][0]["error"].lower()
    assert "deadline has passed" in error_text(call("fused__get_quote", quote, operator, seconds=0.0))


def test_an_upstream_schema_with_definitions_keeps_its_references_and_descriptions_stay_short():
    order = {
        "type": "object",
        "properties": {"legs": {"type": "array", "items": {"$ref": "#/$defs/Leg"}}},
        "required": ["legs"],
        "$defs": {"Leg": {"type": "object", "properties": {"qty": {"type": "number"}}, "required": ["qty"]}},
    }
    tool = {"name": "place", "inputSchema": order, "annotations": {"readOnlyHint": True}}
    servers = [OfferedServer(f"venue-{n}", "venue", "online", (tool,), (), (), ()) for n in range(40)]
    tools = tools_by_name(servers)
    for name in ("fused__place", "balanced__place"):
        schema = tools[name].input_schema
        validator = jsonschema.Draft202012Validator(schema)
        assert validator.is_valid({"arguments": {"legs": [{"qty": 1}]}})
        assert not validator.is_valid({"arguments": {"legs": [{"qty": "one"}]}})  # the $ref resolved, and held
        assert len(schema["properties"]["servers"]["items"]["enum"]) == 40
        assert "and 35 more" in tools[name].description
