"""Prompts run through the API (`POST /api/servers/<name>/prompt/`) and the fleet API (`fleet.calls.get_prompt`),
against a real demo exchange over MCP: its `explain_spread(symbol)` prompt renders the live quote into a message."""

from __future__ import annotations

import asyncio

import pytest

from fleet import calls as fleet_calls
from mcp_client import Deadline, ServerError
from registry.discovery import discover_and_record
from registry.models import CallRecord, Server
from registry.services import server_create
from tests.exchanges import EXCHANGE_HOST, wait_discovered
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/servers/exchange-alpha/prompt/"
SPREAD = {"prompt": "explain_spread", "arguments": {"symbol": "BTC-USD"}}


def exchange(name: str = "exchange-alpha") -> Server:
    url = EXCHANGE_HOST.fresh_exchange_url("--profile", "alpha", "--no-outages", "--error-rate", "0")
    server = server_create(name=name, transport="http", url=url, request_timeout_seconds=5)
    assert discover_and_record(server=server)["ok"]
    return server


def test_an_operator_runs_a_prompt_and_gets_its_messages_recorded_with_who_asked(
    operator_api, operator_user, live_fleet
):
    exchange()

    response = operator_api.post(URL, {**SPREAD, "correlation_id": "prompt-7"}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["result"]["name"] == "explain_spread"
    (message,) = body["result"]["messages"]
    assert message["role"] == "user" and message["content"]["type"] == "text"
    assert (
        "BTC-USD is quoted bid" in message["content"]["text"]
        and "Explain what this spread means" in (message["content"]["text"])
    )
    assert body["outcome"]["ok"] is True and body["outcome"]["operation"] == "prompts/get"
    assert body["outcome"]["caller"] == operator_user.username
    wait_for(lambda: CallRecord.objects.filter(operation="prompts/get", correlation_id="prompt-7").exists())
    record = CallRecord.objects.get(correlation_id="prompt-7")
    assert record.target_name == "explain_spread" and record.caller == operator_user.username and record.ok


def test_arguments_are_checked_against_the_prompts_declared_arguments_first(operator_api):
    exchange()

    missing = operator_api.post(URL, {"prompt": "explain_spread"}, format="json")
    assert missing.status_code == 400
    assert missing.json() == {"arguments": {"symbol": ["This field is required."]}}

    empty = operator_api.post(URL, {"prompt": "explain_spread", "arguments": {"symbol": ""}}, format="json")
    assert empty.json() == {"arguments": {"symbol": ["This field is required."]}}

    wrong = operator_api.post(
        URL, {"prompt": "explain_spread", "arguments": {"symbol": 42, "depth": "3"}}, format="json"
    )
    assert wrong.status_code == 400
    errors = wrong.json()["arguments"]
    assert set(errors) == {"symbol", "depth"}
    assert "strings" in errors["symbol"][0] and "it takes: symbol" in errors["depth"][0]

    unknown = operator_api.post(URL, {"prompt": "explain_sprd"}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["prompt"] == ["exchange-alpha has no prompt 'explain_sprd'. Its prompts: explain_spread."]
    assert operator_api.post(URL, {"arguments": {}}, format="json").json() == {"prompt": ["This field is required."]}
    assert not CallRecord.objects.filter(operation="prompts/get").exists()  # nothing was sent


def test_a_prompt_the_server_refuses_is_a_502_with_its_reason(operator_api):
    exchange()

    response = operator_api.post(URL, {"prompt": "explain_spread", "arguments": {"symbol": "NOPE-USD"}}, format="json")

    assert response.status_code == 502
    body = response.json()
    # The exchange's error is the SDK's generic one; what we add is which server and which request failed.
    assert "exchange-alpha" in body["detail"] and "prompts/get failed" in body["detail"]
    assert body["outcome"]["error_kind"] == "server_error" and body["outcome"]["target_name"] == "explain_spread"


@pytest.mark.parametrize("persona", ["anonymous_api", "outsider_api", "viewer_api"])
def test_only_operators_and_admins_run_prompts(request, persona):
    exchange()
    client = request.getfixturevalue(persona)
    assert client.post(URL, SPREAD, format="json").status_code in (401, 403)


def test_a_disabled_or_unknown_server_is_refused(operator_api):
    server = exchange()
    Server.objects.filter(pk=server.pk).update(enabled=False)
    from registry.api_calls import servers

    servers.clear()
    disabled = operator_api.post(URL, SPREAD, format="json")
    assert disabled.status_code == 400 and "enabled" in disabled.json()
    assert operator_api.post("/api/servers/no-such/prompt/", SPREAD, format="json").status_code == 404


def test_the_fleet_api_renders_a_prompt_of_a_running_server(live_fleet):
    exchange()
    wait_discovered(live_fleet, "exchange-alpha")

    answer = asyncio.run(
        fleet_calls.get_prompt(
            "exchange-alpha", "explain_spread", {"symbol": "ETH-USD"}, deadline=Deadline.within(5), caller="test"
        )
    )

    assert answer.outcome.ok and answer.outcome.caller == "test"
    assert "ETH-USD is quoted bid" in answer.result.messages[0]["content"]["text"]
    with pytest.raises(ServerError) as refused:
        asyncio.run(fleet_calls.get_prompt("exchange-alpha", "no_such_prompt", deadline=Deadline.within(5)))
    assert refused.value.outcome is not None and refused.value.outcome.error_kind == "server_error"
