"""The fused answer as declared in the OpenAPI schema (fusion.api.FusionAnswerSerializer) is the answer given."""

from __future__ import annotations

import pytest
from django.utils import timezone

from fusion.api import FusionAnswerSerializer, FusionRunSerializer
from fusion.models import FusionRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def run() -> FusionRun:
    return FusionRun.objects.create(
        created_at=timezone.now(), tool="get_quote", strategy="median", quorum=1, quorum_met=True, duration_ms=1.5
    )


def test_the_runs_api_answers_exactly_the_declared_fields(viewer_api, run):
    listed = viewer_api.get("/api/fusion/runs/").json()["results"]
    assert [set(answer) for answer in listed] == [set(FusionAnswerSerializer().fields)]
    one = viewer_api.get(f"/api/fusion/runs/{run.pk}/").json()
    assert set(one) == set(FusionRunSerializer().fields)
    assert one["run_id"] == run.pk and one["tool"] == "get_quote" and one["explanation"] == {}


def test_the_schema_shows_the_answer_field_by_field(viewer_api):
    schema = viewer_api.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/fusion/query/"]["post"]["responses"]
    for code in ("200", "502"):
        assert operation[code]["content"]["application/json"]["schema"]["$ref"].endswith("/FusionAnswer")
    declared = schema["components"]["schemas"]["FusionAnswer"]["properties"]
    assert set(declared) == set(FusionAnswerSerializer().fields)
