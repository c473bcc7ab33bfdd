"""The OpenAPI schema (/api/schema/) shows every request body the API reads: declared once, as serializers, and
described field by field rather than as "an object"."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(viewer_api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = viewer_api.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def body_of(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The component a POST's JSON body is declared as."""
    reference = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return schema["components"]["schemas"][reference.rsplit("/", 1)[1]]


@pytest.mark.parametrize(
    ("path", "fields", "required"),
    [
        (
            "/api/fusion/query/",
            {
                "tool",
                "resource",
                "arguments",
                "servers",
                "tag",
                "server_type",
                "strategy",
                "options",
                "fields",
                "quorum",
                "timeout_seconds",
                "deadline_seconds",
                "cache_ttl_seconds",
                "max_age_seconds",
                "timestamp_field",
                "ranges",
                "allow_state_changing",
            },
            set(),
        ),
        (
            "/api/coordinator/transactions/",
            {"participants", "arbitrage", "timeout_seconds", "max_slippage_bps", "protocol", "idempotency_key"},
            set(),
        ),
        (
            "/api/coordinator/arbitrage/",
            {
                "symbols",
                "size",
                "min_profit_bps",
                "servers",
                "slippage_bps",
                "max_age_seconds",
                "depth",
                "timeout_seconds",
            },
            {"symbols", "size"},
        ),
        (
            "/api/coordinator/call/",
            {"tool", "arguments", "servers", "tag", "server_type", "idempotency_key", "timeout_seconds"},
            {"tool"},
        ),
    ],
)
def test_each_request_body_is_declared_field_by_field(schema, path, fields, required):
    body = body_of(schema, path)
    assert set(body["properties"]) == fields
    assert set(body.get("required", [])) == required


def test_the_nested_parts_are_declared_too(schema):
    components = schema["components"]["schemas"]
    fusion = body_of(schema, "/api/fusion/query/")
    assert fusion["properties"]["ranges"]["additionalProperties"]["$ref"].endswith("/Range")
    assert set(components["Range"]["properties"]) == {"min", "max"}
    assert fusion["properties"]["quorum"]["minimum"] == 1
    transaction = body_of(schema, "/api/coordinator/transactions/")
    participants = transaction["properties"]["participants"]["items"]["$ref"].rsplit("/", 1)[1]
    kinds = {one["$ref"].rsplit("/", 1)[1] for one in components[participants]["oneOf"]}
    assert kinds == {"Order", "SagaStep"}
    assert set(components["Order"]["required"]) == {"server", "symbol", "side", "quantity"}
    assert set(components["SagaStep"]["required"]) == {"server", "action", "compensation"}
    assert transaction["properties"]["arbitrage"]["allOf"][0]["$ref"].endswith("/ArbitrageChoice")


@pytest.mark.parametrize(
    ("path", "filters"),
    [
        ("/api/fusion/runs/", {"tool", "strategy", "quorum_met"}),
        ("/api/coordinator/operations/", {"kind", "state"}),
        ("/api/coordinator/transactions/", {"state"}),
        ("/api/alerts/", {"state"}),
    ],
)
def test_the_filters_of_a_list_are_declared(schema, path, filters):
    parameters = {p["name"] for p in schema["paths"][path]["get"]["parameters"] if p["in"] == "query"}
    assert filters <= parameters


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ("/api/fusion/runs/?quorum_met=maybe", {"quorum_met": "true or false"}),
        ("/api/coordinator/operations/?kind=dance", {"kind": "one of arbitrage, call, transaction"}),
        ("/api/coordinator/transactions/?state=odd", None),
        ("/api/alerts/?state=sideways", {"state": "one of pending, firing, resolved"}),
    ],
)
def test_a_bad_filter_is_named_with_its_message_as_text(viewer_api, query, answer):
    response = viewer_api.get(query)
    assert response.status_code == 400
    if answer is not None:
        assert response.json() == answer
    else:
        assert list(response.json()) == ["state"] and response.json()["state"].startswith("one of ")
