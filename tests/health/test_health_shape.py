"""The health figures as declared in the OpenAPI schema (health.api serializers) are what the API answers."""

from __future__ import annotations

import pytest
from django.utils import timezone

from health.api import (
    FleetHealthSerializer,
    LatencySerializer,
    ServerFiguresSerializer,
    ServerHealthSerializer,
    StatusChangeSerializer,
    ToolFiguresSerializer,
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
