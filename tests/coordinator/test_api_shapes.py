"""Operations and transactions as declared in the OpenAPI schema (coordinator.api serializers) are what the API
answers, field for field."""

from __future__ import annotations

import pytest
from django.utils import timezone

from coordinator.api import (
    OperationDetailSerializer,
    OperationSerializer,
    ParticipantSerializer,
    TransactionSerializer,
)
from coordinator.models import Operation, OperationKind, Participant, Transaction

pytestmark = pytest.mark.django_db


def declared(serializer_class: type) -> set[str]:
    return set(serializer_class().fields)


def test_operations_answer_exactly_the_declared_fields(viewer_api):
    analysis = Operation.objects.create(
        kind=OperationKind.ARBITRAGE, started_at=timezone.now(), result={"opportunities": [{"symbol": "BTC-USD"}]}
    )
    call = Operation.objects.create(kind=OperationKind.CALL, started_at=timezone.now(), steps=[{"name": "a"}])
    listed = {row["id"]: set(row) for row in viewer_api.get("/api/coordinator/operations/").json()["results"]}
    assert listed[analysis.pk] == declared(OperationSerializer)
    # opportunities and best are an analysis's only: declared as not required
    assert listed[call.pk] == declared(OperationSerializer) - {"opportunities", "best"}
    assert set(viewer_api.get(f"/api/coordinator/operations/{analysis.pk}/").json()) == declared(
        OperationDetailSerializer
    )


def test_transactions_answer_exactly_the_declared_fields(viewer_api):
    tx = Transaction.objects.create(created_at=timezone.now())
    Participant.objects.create(transaction=tx, position=0, server="ex-a", order={}, idempotency_key="k-0")
    body = viewer_api.get(f"/api/coordinator/transactions/{tx.pk}/").json()
    assert set(body) == declared(TransactionSerializer)
    assert [set(p) for p in body["participants"]] == [declared(ParticipantSerializer)]
    listed = viewer_api.get("/api/coordinator/transactions/").json()["results"]
    assert [set(row) for row in listed] == [declared(TransactionSerializer)]


def test_the_schema_shows_them_field_by_field(viewer_api):
    schema = viewer_api.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    assert set(components["Transaction"]["properties"]) == declared(TransactionSerializer)
    assert set(components["Participant"]["properties"]) == declared(ParticipantSerializer)
    assert set(components["Operation"]["properties"]) == declared(OperationSerializer)
    assert set(components["OperationDetail"]["properties"]) == declared(OperationDetailSerializer)
    created = schema["paths"]["/api/coordinator/transactions/"]["post"]["responses"]["200"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/Transaction")
