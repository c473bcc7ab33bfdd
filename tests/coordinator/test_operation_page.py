"""An operation's page shows what its kind has: an arbitrage analysis its report, a balanced call its answer."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from coordinator.models import Operation, OperationKind, OperationState
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def page_of(user, operation: Operation) -> str:  # type: ignore[no-untyped-def]
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    response = client.get(f"/coordinator/operations/{operation.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_balanced_call_shows_its_answer_not_an_empty_arbitrage_report(viewer_user):
    call = Operation.objects.create(
        kind=OperationKind.CALL,
        state=OperationState.SUCCEEDED,
        result={"server": "exchange-alpha", "result": {"structured_content": {"bid": 1.0}}},
        started_at=timezone.now(),
    )
    html = page_of(viewer_user, call)
    assert 'id="operation-result"' in html and "Balanced call #" in html
    assert 'id="opportunities"' not in html and 'id="quote-chart"' not in html


def test_an_arbitrage_analysis_shows_its_report(viewer_user):
    analysis = Operation.objects.create(
        kind=OperationKind.ARBITRAGE, state=OperationState.SUCCEEDED, result={}, started_at=timezone.now()
    )
    html = page_of(viewer_user, analysis)
    assert 'id="opportunities"' in html and 'id="operation-result"' not in html
