"""The health figures as declared in the OpenAPI schema (health.api serializers) are what the API answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from health.api import (
    FleetHealthSerializer,
    LatencySerializer,
    PredictionSerializer,
    ServerFiguresSerializer,
    ServerHealthSerializer,
    StatusChangeSerializer,
    ToolFiguresSerializer,
    TrendSerializer,
)
from health.models import HealthSample
from registry.services import server_create, server_update

pytestmark = pytest.mark.django_db


def declared(serializer_class: type) -> set[str]:
    return set(serializer_class().fields)


def test_health_answers_exactly_the_declared_fields(viewer_api):
    server = server_create(name="quotes", transport="http", url="http://127.0.0.1:9/mcp")
    server_update(server=server, enabled=False)  # one status change in the history
    HealthSample.objects.create(
        server=server, at=timezone.now(), kind="passive", ok=True, latency_ms=3.0, tool="get_quote"
    )
    fleet = viewer_api.get("/api/health/").json()
    assert set(fleet) == declared(FleetHealthSerializer)
    (figures,) = fleet["results"]
    assert set(figures) == declared(ServerFiguresSerializer)
    assert set(figures["latency_ms"]) == declared(LatencySerializer)
    one = viewer_api.get("/api/health/quotes/").json()
    assert set(one) == declared(ServerHealthSerializer)
    assert [set(tool) for tool in one["tools"]] == [declared(ToolFiguresSerializer)]
    assert [set(change) for change in one["status_history"]] == [declared(StatusChangeSerializer)]


def test_the_schema_shows_them_field_by_field(viewer_api):
    schema = viewer_api.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    assert set(components["ServerHealth"]["properties"]) == declared(ServerHealthSerializer)
    assert set(components["StatusChange"]["properties"]) == {"at", "from", "to", "reason", "source"}


# What /api/health/ answered before issue 17: it may gain fields, never lose these.
CONTRACT = {"server", "status", "status_reason", "availability", "latency_ms", "success_rate", "checks_24h", "trend"}
CONTRACT_LATENCY = {"p50", "p95", "p99", "approximate"}
CONTRACT_TREND = {"direction", "slope_ms_per_hour", "confidence", "points"}
CONTRACT_PREDICTION = {"metric", "threshold", "at", "earliest", "latest"}


def test_the_figures_keep_their_old_fields_and_declare_the_new_ones(viewer_api):
    """A server whose check call is rising: trend and prediction objects answered, each exactly as declared."""
    server = server_create(
        name="rising",
        transport="http",
        url="http://127.0.0.1:9/mcp",
        metadata={"health": {"synthetic": {"tool": "get_quote"}}},
    )
    now = timezone.now()
    HealthSample.objects.bulk_create(
        HealthSample(
            server=server,
            at=now - timedelta(seconds=10 * (120 - i)),
            kind=kind,
            ok=True,
            latency_ms=5 + i * (3 if kind == "synthetic" else 0) + i % 2,
            tool="get_quote" if kind == "synthetic" else "",
        )
        for i in range(120)
        for kind in ("probe", "synthetic")
    )
    (figures,) = viewer_api.get("/api/health/").json()["results"]
    assert set(figures) >= CONTRACT | {"prediction"} and set(figures) == declared(ServerFiguresSerializer)
    for latency in (figures["latency_ms"], figures["probe_latency_ms"]):
        assert set(latency) >= CONTRACT_LATENCY and set(latency) == declared(LatencySerializer)
    assert set(figures["trend"]) >= CONTRACT_TREND and set(figures["trend"]) == declared(TrendSerializer)
    assert figures["prediction"] is not None, figures["prediction_reason"]
    assert set(figures["prediction"]) >= CONTRACT_PREDICTION
    assert set(figures["prediction"]) == declared(PredictionSerializer)
    schema = viewer_api.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert set(schema["Trend"]["properties"]) == declared(TrendSerializer)
    assert schema["Trend"]["properties"]["direction"].get("nullable") is True
