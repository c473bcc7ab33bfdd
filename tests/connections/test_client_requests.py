"""Requests a server sends the client: elicitation answered by the defaults policy and recorded, over the real
protocol, in both eras."""

from __future__ import annotations

import json

import pytest

from mcp_client import ConnectionHub, ServerTarget
from mcp_client.client_requests import defaults_answer

from .helpers import stdio_target


@pytest.mark.parametrize("mode", ["auto", "legacy"], ids=["2026-07-28", "2025-11-25"])
async def test_elicitation_is_accepted_with_defaults_or_declined_and_recorded(hub: ConnectionHub, marker: str, mode):
    target: ServerTarget = stdio_target("asker", "eliciting", marker, mode=mode)
    records = hub.streams.outcomes.subscribe(name="test", accept=lambda o: o.operation == "elicitation/create")
    connection = await hub.ensure(target)
    await connection.wait_connected(20)

    accepted = (await hub.call_tool("asker", "book_with_defaults")).result
    action, _, data = accepted.text.partition(": ")
    assert action == "accept" and json.loads(data) == {"seats": 2, "window": True, "name": "Ada"}

    declined = (await hub.call_tool("asker", "book_without_defaults")).result
    assert declined.text == "decline"

    answers = records.drain()
    assert [o.error_message.split(":")[0] for o in answers] == [
        "with the schema's defaults for name, seats, window",
        "declined",
    ]
    assert "card_number" in answers[1].error_message
    assert all(o.server_key == "asker" and o.caller == "server" for o in answers)


def test_the_defaults_policy_checks_types_and_required_fields():
    schema = {
        "type": "object",
        "properties": {"age": {"type": "integer", "default": "thirty"}, "name": {"type": "string", "default": "x"}},
        "required": ["name"],
    }
    content, why = defaults_answer(schema)
    assert content is None and "do not satisfy" in why
    content, why = defaults_answer({"type": "object", "properties": {"name": {"type": "string", "default": "x"}}})
    assert content == {"name": "x"} and why == ""
