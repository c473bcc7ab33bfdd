"""An alert as declared in the OpenAPI schema (health.alerts_api.AlertSerializer) is what the API answers."""

from __future__ import annotations

import pytest
from django.utils import timezone

from health.alerts_api import AlertSerializer
from health.models import Alert, AlertRule, AlertState, RuleKind
from registry.services import server_create

pytestmark = pytest.mark.django_db


def test_alerts_answer_exactly_the_declared_fields(viewer_api):
    server = server_create(name="quotes", transport="http", url="http://127.0.0.1:9/mcp")
    rule = AlertRule.objects.create(name="server down", kind=RuleKind.DOWN)
    alert = Alert.objects.create(
        rule=rule, server=server, state=AlertState.FIRING, summary="quotes is down", started_at=timezone.now()
    )
    listed = viewer_api.get("/api/alerts/").json()["results"]
    assert [set(row) for row in listed] == [set(AlertSerializer().fields)]
    assert set(viewer_api.get(f"/api/alerts/{alert.pk}/").json()) == set(AlertSerializer().fields)
    schema = viewer_api.get("/api/schema/?format=json").json()
    assert set(schema["components"]["schemas"]["Alert"]["properties"]) == set(AlertSerializer().fields)
