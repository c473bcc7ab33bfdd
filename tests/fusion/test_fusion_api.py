"""The fusion API's contract at its edges: who may ask, and bad input answered 400 with the field named."""

from __future__ import annotations

import pytest

from registry.models import Server
from registry.services import server_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def exchange_rows(db) -> list[Server]:
    return [
        server_create(name=name, transport="stdio", command="python", args=["-m", "x"], server_type="exchange")
        for name in ("one", "two")
    ]


def post(api, body):  # type: ignore[no-untyped-def]
    return api.post("/api/fusion/query/", body, format="json")


def test_asking_needs_an_operator_and_reading_runs_a_viewer(anonymous_api, viewer_api):
    assert post(anonymous_api, {"tool": "get_quote"}).status_code == 401
    assert post(viewer_api, {"tool": "get_quote"}).status_code == 403
    runs = viewer_api.get("/api/fusion/runs/")
    assert runs.status_code == 200 and runs.json()["count"] == 0 and runs.json()["statistics"]["runs"] == 0
    assert {s["name"] for s in viewer_api.get("/api/fusion/strategies/").json()["results"]} >= {
        "priority",
        "majority",
        "median",
        "weighted_mean",
        "weighted_median",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "tool"),
        ({"tool": 5}, "tool"),
        ({"tool": "get_quote", "resource": "x://y"}, "resource"),
        ({"tool": "get_quote", "arguments": [1]}, "arguments"),
        ({"tool": "get_quote", "strategy": "loudest"}, "strategy"),
        ({"tool": "get_quote", "options": {"threshold": "high"}}, "options.threshold"),
        ({"tool": "get_quote", "quorum": 0}, "quorum"),
        ({"tool": "get_quote", "quorum": True}, "quorum"),
        ({"tool": "get_quote", "timeout_seconds": -1}, "timeout_seconds"),
        ({"tool": "get_quote", "deadline_seconds": "soon"}, "deadline_seconds"),
        ({"tool": "get_quote", "cache_ttl_seconds": 1e9}, "cache_ttl_seconds"),
        ({"tool": "get_quote", "fields": ["bid", "bid"]}, "fields"),
        ({"tool": "get_quote", "fields": ["a b"]}, "fields"),
        ({"tool": "get_quote", "servers": ["one"], "tag": "x"}, "tag"),
        ({"tool": "get_quote", "servers": ["nobody"]}, "servers"),
        ({"tool": "get_quote", "servers": ["one"], "quorum": 2}, "quorum"),
        ({"tool": "get_quote", "ranges": {"bid": {"min": 2, "max": 1}}}, "ranges.bid"),
        ({"tool": "get_quote", "surprise": 1}, "surprise"),
        ({"tool": "get_quote", "server_type": "no-such-type"}, "tool"),
    ],
)
def test_bad_queries_answer_400_naming_the_field(operator_api, exchange_rows, body, field):
    response = post(operator_api, body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_a_body_that_is_not_an_object_is_a_400(operator_api):
    response = operator_api.post("/api/fusion/query/", [1, 2], format="json")
    assert response.status_code == 400


def test_arguments_are_checked_against_the_tools_input_schema(operator_api, exchange_rows):
    from mcp_client import DiscoveredCapabilities
    from registry.services import capabilities_record

    schema = {"type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]}
    for server in exchange_rows:
        discovered = DiscoveredCapabilities(
            protocol_version="2025-11-25",
            era="handshake",
            server_info=None,
            instructions=None,
            capabilities={"tools": {}},
            tools=[{"name": "get_quote", "inputSchema": schema}],
        )
        capabilities_record(server=server, discovered=discovered)
    response = post(operator_api, {"tool": "get_quote", "server_type": "exchange", "arguments": {"symbol": 5}})
    assert response.status_code == 400 and "arguments.symbol" in response.json()
