"""Tool calls and resource reads through the API, per persona, against a real demo exchange over MCP."""

from __future__ import annotations

import pytest

from registry.discovery import discover_and_record
from registry.models import CallRecord, Server
from registry.services import server_create
from tests.exchanges import EXCHANGE_HOST
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUOTE = {"tool": "get_quote", "arguments": {"symbol": "BTC-USD"}}


def exchange(name: str = "exchange-alpha", *extra: str) -> Server:
    # A fresh exchange of the suite's exchange host: what these tests check does not depend on the transport.
    url = EXCHANGE_HOST.fresh_exchange_url("--profile", "alpha", *extra)
    server = server_create(name=name, transport="http", url=url, request_timeout_seconds=5)
    assert discover_and_record(server=server)["ok"]
    return server


@pytest.mark.parametrize("persona", ["anonymous_api", "outsider_api", "viewer_api"])
def test_only_operators_and_admins_may_call_tools(request, persona):
    exchange()
    client = request.getfixturevalue(persona)
    assert client.post("/api/servers/exchange-alpha/call/", QUOTE, format="json").status_code in (401, 403)
    assert client.post("/api/servers/exchange-alpha/read/", {"uri": "x"}, format="json").status_code in (401, 403)


def test_an_operator_calls_a_tool_and_the_call_is_recorded_with_who_made_it(operator_api, operator_user, live_fleet):
    exchange()
    response = operator_api.post(
        "/api/servers/exchange-alpha/call/", {**QUOTE, "correlation_id": "trace-42"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    quote = body["result"]["structured_content"]
    assert quote["symbol"] == "BTC-USD" and quote["bid"] < quote["ask"]
    assert body["result"]["is_error"] is False and body["result"]["content"]
    outcome = body["outcome"]
    assert outcome["ok"] is True and outcome["error_kind"] is None and outcome["latency_ms"] > 0
    assert outcome["caller"] == operator_user.username and outcome["correlation_id"] == "trace-42"
    wait_for(lambda: CallRecord.objects.filter(operation="tools/call", correlation_id="trace-42").exists())
    record = CallRecord.objects.get(operation="tools/call", correlation_id="trace-42")
    assert record.caller == operator_user.username and record.target_name == "get_quote" and record.ok


def test_arguments_are_checked_against_the_input_schema_first(operator_api):
    exchange()
    missing = operator_api.post("/api/servers/exchange-alpha/call/", {"tool": "get_quote"}, format="json")
    assert missing.status_code == 400
    assert missing.json() == {"arguments": {"symbol": ["This field is required."]}}

    too_deep = operator_api.post(
        "/api/servers/exchange-alpha/call/",
        {"tool": "get_order_book", "arguments": {"symbol": "BTC-USD", "depth": 0}},
        format="json",
    )
    assert too_deep.status_code == 400 and list(too_deep.json()["arguments"]) == ["depth"]

    wrong_type = operator_api.post(
        "/api/servers/exchange-alpha/call/",
        {"tool": "reserve_order", "arguments": {"symbol": "BTC-USD", "side": "hold", "quantity": "lots"}},
        format="json",
    )
    assert wrong_type.status_code == 400 and set(wrong_type.json()["arguments"]) == {"side", "quantity"}

    not_an_object = operator_api.post(
        "/api/servers/exchange-alpha/call/", {"tool": "get_quote", "arguments": [1, 2]}, format="json"
    )
    assert not_an_object.status_code == 400 and "arguments" in not_an_object.json()


def test_an_unknown_tool_is_named_with_the_ones_that_exist(operator_api):
    exchange()
    response = operator_api.post("/api/servers/exchange-alpha/call/", {"tool": "get_qoute"}, format="json")
    assert response.status_code == 400
    message = response.json()["tool"][0]
    assert "get_qoute" in message and "get_quote" in message


def test_a_tool_error_is_a_result_not_a_failure(operator_api):
    exchange()
    response = operator_api.post(
        "/api/servers/exchange-alpha/call/", {"tool": "get_quote", "arguments": {"symbol": "NOPE-USD"}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["result"]["is_error"] is True
    assert response.json()["outcome"]["error_kind"] == "tool_error"


def test_a_server_that_is_down_answers_503_with_the_reason(operator_api):
    server = exchange()
    # A server known to offer get_quote, but nothing listens at its URL now.
    nowhere = server_create(name="nowhere", transport="http", url="http://127.0.0.1:9/mcp")
    snapshot = server.snapshots.get()
    snapshot.pk, snapshot.server = None, nowhere
    snapshot.save()
    response = operator_api.post("/api/servers/nowhere/call/", QUOTE, format="json")
    assert response.status_code == 503, response.json()
    assert "'nowhere'" in response.json()["detail"] and "ConnectError" in response.json()["detail"]
    assert response.json()["outcome"]["error_kind"] == "unavailable"


def test_a_tool_that_times_out_answers_504(operator_api):
    exchange("slow-exchange", "--latency-ms", "3000")
    response = operator_api.post("/api/servers/slow-exchange/call/", {**QUOTE, "timeout_seconds": 0.5}, format="json")
    assert response.status_code == 504, response.json()
    assert response.json()["outcome"]["error_kind"] == "timeout"
    assert "timed out" in response.json()["detail"]


def test_a_disabled_server_is_refused_naming_the_field(operator_api):
    server = exchange()
    Server.objects.filter(pk=server.pk).update(enabled=False)
    response = operator_api.post("/api/servers/exchange-alpha/call/", QUOTE, format="json")
    assert response.status_code == 400 and "enabled" in response.json()


def test_reading_a_resource(operator_api):
    exchange()
    response = operator_api.post(
        "/api/servers/exchange-alpha/read/", {"uri": "exchange://alpha/ticker/BTC-USD"}, format="json"
    )
    assert response.status_code == 200, response.json()
    contents = response.json()["result"]["contents"]
    assert '"symbol":"BTC-USD"' in contents[0]["text"].replace(" ", "")
    unknown = operator_api.post("/api/servers/exchange-alpha/read/", {"uri": "exchange://alpha/nope"}, format="json")
    assert unknown.status_code == 502 and unknown.json()["outcome"]["error_kind"] == "server_error"
    assert operator_api.post("/api/servers/exchange-alpha/read/", {}, format="json").json() == {
        "uri": ["This field is required."]
    }
