"""The coordinator API: arbitrage analyses (operators), operations (viewers), balanced calls and routing."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coordinator.arbitrage_workflow import ArbitrageRequestSerializer, parse_request, run_arbitrage
from coordinator.balanced_calls import BalancedCallSerializer, balanced_call_async, parse_call, routing_stats
from coordinator.errors import RequestError
from coordinator.models import Operation, OperationKind, OperationState, Transaction, TransactionState
from coordinator.submissions import RefusalReason, SubmissionRefused, transaction_submit
from coordinator.transaction_log import transaction_json
from coordinator.transaction_requests import (
    KEY_FIELD,
    KEY_HEADER,
    MAX_KEY_LENGTH,
    TransactionRequestSerializer,
    idempotency_key_of,
)
from orchestrator_site.async_api import AsyncAPIView, Caller, json_answer
from registry.permissions import IsOperator, IsViewer, Role
from registry.request_bodies import one_of, query_filters

logger = logging.getLogger(__name__)


class ArbitrageView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(
        operation_id="coordinator_arbitrage",
        summary="Run an arbitrage analysis across every exchange (or the named ones)",
        description=(
            "Answers the stored report: the quotes used, every ordered pair and the opportunities above the "
            "minimum, best first."
        ),
        request=ArbitrageRequestSerializer,
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request) -> Response:
        try:
            report = run_arbitrage(parse_request(request.data), created_by=request.user.get_username())
        except RequestError as exc:
            raise serializers.ValidationError(exc.errors) from None
        except RuntimeError as exc:  # the fleet loop is not running in this process
            logger.warning("coordinator: cannot run an analysis: %s", exc)
            return Response({"error": "the fleet is not running here"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(report)


class BalancedCallView(AsyncAPIView):
    """Served on the event loop (the API fast lane for tokens): the call is awaited, holding no thread."""

    required_role = Role.OPERATOR

    @extend_schema(
        operation_id="coordinator_call",
        summary="Call a tool on the best of the servers offering it, failing over within the deadline",
        description=("200 with the answer and every attempt; 502 when every candidate failed."),
        request=BalancedCallSerializer,
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiTypes.OBJECT,
            502: OpenApiTypes.OBJECT,
            503: OpenApiTypes.OBJECT,
        },
    )
    async def post(self, request: HttpRequest, caller: Caller, body: Any) -> JsonResponse:
        try:
            answer = await balanced_call_async(parse_call(body), created_by=caller.username)
        except RequestError as exc:
            raise serializers.ValidationError(exc.errors) from None
        except RuntimeError as exc:
            logger.warning("coordinator: cannot route a call: %s", exc)
            return json_answer({"error": "the fleet is not running here"}, status.HTTP_503_SERVICE_UNAVAILABLE)
        return json_answer(answer, status.HTTP_502_BAD_GATEWAY if answer["error"] else status.HTTP_200_OK)


class RoutingView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        operation_id="coordinator_routing",
        summary="The load balancer's figures: per server latency, load, errors, ejections; decisions by reason",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        try:
            return Response(routing_stats())
        except RuntimeError:
            return Response({"servers": {}, "decisions": {}, "note": "the fleet is not running here"})


def operation_json(operation: Operation, *, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": operation.pk,
        "kind": operation.kind,
        "state": operation.state,
        "parameters": operation.parameters,
        "error": operation.error or None,
        "created_by": operation.created_by,
        "started_at": operation.started_at.isoformat(),
        "finished_at": operation.finished_at.isoformat() if operation.finished_at else None,
        "duration_ms": operation.duration_ms,
        "steps": len(operation.steps),
    }
    result = operation.result or {}
    if operation.kind == OperationKind.ARBITRAGE:
        best = (result.get("opportunities") or [None])[0]
        data["opportunities"] = len(result.get("opportunities") or [])
        data["best"] = best
    if full:
        data["steps"] = operation.steps
        data["result"] = operation.result
    return data


class OperationSerializer(serializers.Serializer):
    """An operation as the list shows it. Made by `operation_json`; declared here for the schema (a test keeps the
    two equal)."""

    id = serializers.IntegerField()
    kind = serializers.CharField(help_text=", ".join(OperationKind.values))
    state = serializers.CharField(help_text=", ".join(OperationState.values))
    parameters = serializers.DictField(help_text="The request it ran.")
    error = serializers.CharField(allow_null=True)
    created_by = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.FloatField(allow_null=True)
    steps = serializers.IntegerField(help_text="How many steps it has (the list: one operation).")
    opportunities = serializers.IntegerField(required=False, help_text="Arbitrage only: how many were found.")
    best = serializers.DictField(required=False, allow_null=True, help_text="Arbitrage only: the best opportunity.")

    def to_representation(self, operation: Operation) -> dict[str, Any]:
        return operation_json(operation)


class OperationDetailSerializer(OperationSerializer):
    """One operation with every step (name, state, started/finished, duration, error) and its result."""

    steps = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]
    result = serializers.JSONField(allow_null=True)

    def to_representation(self, operation: Operation) -> dict[str, Any]:
        return operation_json(operation, full=True)


class OperationFilters(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=OperationKind.values, required=False, allow_blank=True, error_messages=one_of(OperationKind.values)
    )
    state = serializers.ChoiceField(
        choices=OperationState.values, required=False, allow_blank=True, error_messages=one_of(OperationState.values)
    )


class OperationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every coordinated operation, newest first (?kind=, ?state=); one with its steps and result."""

    serializer_class = OperationSerializer
    permission_classes = [IsViewer]
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return Operation.objects.filter(**query_filters(OperationFilters, self.request.query_params))

    @extend_schema(parameters=[OperationFilters])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=OperationDetailSerializer)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(OperationDetailSerializer(self.get_object()).data)


TRANSACTION_STATUS = {
    TransactionState.COMMITTED: status.HTTP_200_OK,
    TransactionState.ABORTED: status.HTTP_409_CONFLICT,  # a participant refused: nothing was done anywhere
}
REFUSAL_STATUS = {
    RefusalReason.IN_PROGRESS: status.HTTP_409_CONFLICT,
    RefusalReason.KEY_REUSED: status.HTTP_422_UNPROCESSABLE_ENTITY,
    RefusalReason.ALREADY_EXECUTED: status.HTTP_409_CONFLICT,
}
REPLAYED_HEADER = "Idempotent-Replayed"


def refusal_response(refusal: SubmissionRefused) -> Response:
    tx = refusal.transaction
    if refusal.reason == RefusalReason.ALREADY_EXECUTED:
        error = (
            f"This arbitrage opportunity was already executed by transaction #{tx.pk} ({tx.state}); an opportunity "
            "executes at most once (again only after an execution aborted with nothing moved)."
        )
    elif refusal.reason == RefusalReason.IN_PROGRESS:
        error = (
            f"Transaction #{tx.pk} for this {KEY_HEADER} is still in progress; ask again with the same key, or read "
            f"/api/coordinator/transactions/{tx.pk}/."
        )
    else:
        error = f"This {KEY_HEADER} was used for a different request (transaction #{tx.pk}); use a new key."
    body: dict[str, Any] = {
        "error": error,
        "code": str(refusal.reason),
        "transaction_id": tx.pk,
        "operation_id": tx.operation_id,
        "state": tx.state,
    }
    if refusal.reason == RefusalReason.KEY_REUSED:
        body[KEY_FIELD] = [error]  # the field to blame, as every other 4xx names it
    response = Response(body, status=REFUSAL_STATUS[refusal.reason])
    if refusal.reason == RefusalReason.IN_PROGRESS:
        response["Retry-After"] = "1"
    return response


class ParticipantSerializer(serializers.Serializer):
    server = serializers.CharField()
    order = serializers.DictField(
        help_text="Two-phase: symbol, side, quantity, limit_price; saga: action, compensation."
    )
    idempotency_key = serializers.CharField()
    state = serializers.CharField()
    reservation_id = serializers.CharField(allow_null=True)
    prepared = serializers.JSONField(allow_null=True, help_text="What the reservation (or the action) answered.")
    outcome = serializers.JSONField(allow_null=True, help_text="What the confirmation or cancellation answered.")
    error = serializers.CharField(allow_null=True)
    timeline = serializers.ListField(child=serializers.DictField(), help_text="Each call made to it, in order.")


class TransactionSerializer(serializers.Serializer):
    """A transaction with its participants. Made by `transaction_json`; declared here for the schema (a test keeps
    the two equal)."""

    id = serializers.IntegerField()
    protocol = serializers.CharField(help_text="two_phase or saga")
    state = serializers.CharField(help_text=", ".join(TransactionState.values))
    decision = serializers.CharField(allow_null=True, help_text="commit or abort, once decided (two-phase)")
    decided_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(allow_null=True)
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    operation_id = serializers.IntegerField(allow_null=True)
    idempotency_key = serializers.CharField(allow_null=True)
    parameters = serializers.DictField()
    participants = ParticipantSerializer(many=True)

    def to_representation(self, tx: Transaction) -> dict[str, Any]:
        return transaction_json(tx)


class TransactionFilters(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=TransactionState.values,
        required=False,
        allow_blank=True,
        error_messages=one_of(TransactionState.values),
    )


class TransactionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Transactions across servers: viewers read them, operators run one (POST)."""

    serializer_class = TransactionSerializer
    lookup_value_regex = r"\d+"

    def get_permissions(self):  # type: ignore[no-untyped-def]
        return [IsOperator()] if self.request.method == "POST" else [IsViewer()]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        filters = query_filters(TransactionFilters, self.request.query_params)
        return Transaction.objects.prefetch_related("participants").filter(**filters)

    @extend_schema(parameters=[TransactionFilters])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Run a transaction across servers (two-phase: reserve everywhere, decide, confirm or cancel)",
        description=(
            'Body: {"participants": [{"server", "symbol", "side": "buy"|"sell", "quantity", "limit_price"?}], '
            '"timeout_seconds"} or {"arbitrage": {"operation_id", "opportunity"}, "max_slippage_bps"} to execute '
            'an analysed opportunity, or {"protocol": "saga", "participants": [{"server", "action": {"tool", '
            '"arguments"}, "compensation": {"tool", "arguments"}}]} (compensation arguments may name '
            '"$result.<field>" of the action). 200 committed, 409 aborted (nothing was done anywhere), 202 in doubt '
            "(phase two still retrying; recovery finishes it). "
            f"Idempotency: an `{KEY_HEADER}` header (or an `{KEY_FIELD}` field; 1 to {MAX_KEY_LENGTH} visible ASCII "
            "characters, a random UUID per request will do). The same key from the same user with the same body "
            f"answers the first transaction again (same id, its state now, header `{REPLAYED_HEADER}: true`) "
            'without running anything; while that one is still running, 409 `{"code": '
            f'"{RefusalReason.IN_PROGRESS}", "transaction_id"}}` with Retry-After; the same key with another body, '
            f'422 `{{"code": "{RefusalReason.KEY_REUSED}", "{KEY_FIELD}": [...]}}`. An arbitrage opportunity '
            'executes at most once: a second request for it answers 409 `{"code": '
            f'"{RefusalReason.ALREADY_EXECUTED}", "error", "transaction_id"}}` naming the execution, whatever its '
            "key; only an execution that aborted (nothing moved) lets it be tried again."
        ),
        request=TransactionRequestSerializer,
        parameters=[
            OpenApiParameter(
                KEY_HEADER,
                # "!" to "~": visible ASCII, the same class the request check accepts.
                {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[!-~]+$"},
                location=OpenApiParameter.HEADER,
                description=(
                    f"Optional; 1 to {MAX_KEY_LENGTH} visible ASCII characters. A retry with the same key and body "
                    f"answers the first transaction instead of running again (the `{KEY_FIELD}` body field does "
                    "the same; give one, or both equal)."
                ),
            )
        ],
        responses={
            200: OpenApiResponse(TransactionSerializer, description="Committed (or a replay of a committed one)."),
            202: OpenApiResponse(TransactionSerializer, description="In doubt: phase two still retrying."),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="A bad field, named (the key's too)."),
            409: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description=(
                    "Aborted (the transaction, nothing done anywhere); or refused: "
                    f'`{{"code": "{RefusalReason.ALREADY_EXECUTED}"|"{RefusalReason.IN_PROGRESS}", "error", '
                    '"transaction_id", "operation_id", "state"}`.'
                ),
            ),
            422: OpenApiResponse(
                OpenApiTypes.OBJECT, description=f"The {KEY_HEADER} was used for a different request."
            ),
            503: OpenApiResponse(OpenApiTypes.OBJECT, description="The fleet is not running in this process."),
        },
    )
    def create(self, request: Request) -> Response:
        try:
            key = idempotency_key_of(request.headers.get(KEY_HEADER), request.data)
            submitted = transaction_submit(
                data=request.data, created_by=request.user.get_username(), idempotency_key=key
            )
        except RequestError as exc:
            raise serializers.ValidationError(exc.errors) from None
        except SubmissionRefused as refusal:
            return refusal_response(refusal)
        except RuntimeError as exc:
            logger.warning("coordinator: cannot run a transaction: %s", exc)
            return Response({"error": "the fleet is not running here"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        tx = submitted.transaction
        response = Response(transaction_json(tx), status=TRANSACTION_STATUS.get(tx.state, status.HTTP_202_ACCEPTED))
        if submitted.replayed:
            response[REPLAYED_HEADER] = "true"
        return response
