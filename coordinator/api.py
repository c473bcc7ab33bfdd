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
from coordinator.opportunity_checks import EXECUTABLE_STATUSES, NotExecutableReason, OpportunityNotExecutable
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
            "minimum, best first; each with gross_profit, fees (both taker fees), slippage (the allowance) and "
            "net_profit = gross_profit - fees - slippage. Servers in maintenance (the status health sets while a "
            'window is open) are not asked: `excluded` lists them per symbol with reason "maintenance", beside '
            "quotes left out as stale."
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
        description=(
            "200 with the answer and every attempt; 502 when every candidate failed; 503 when every candidate is "
            "in maintenance. Servers in maintenance (the status health sets while a window is open) are never "
            'called: the answer lists them in `excluded` as `{"server", "reason": "maintenance"}`.'
        ),
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
        if not answer["error"]:
            return json_answer(answer, status.HTTP_200_OK)
        nobody_in_service = not answer["attempts"] and answer["excluded"]
        return json_answer(
            answer, status.HTTP_503_SERVICE_UNAVAILABLE if nobody_in_service else status.HTTP_502_BAD_GATEWAY
        )


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
# Every refusal's body has a `code` (what kind of refusal) and a `reason` (why, in one word a page can switch on).
REFUSAL_REASONS = {
    RefusalReason.IN_PROGRESS: "in_progress",
    RefusalReason.KEY_REUSED: "key_reused",
    RefusalReason.ALREADY_EXECUTED: "already_executed",
}
NOT_EXECUTABLE_CODE = "opportunity_not_executable"


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
        "reason": REFUSAL_REASONS[refusal.reason],
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


def not_executable_response(refusal: OpportunityNotExecutable, data: Any) -> Response:
    """The refusal's shape (error, code, reason, transaction_id, operation_id, state), with no transaction: none
    was logged; and the figures behind it (age_seconds and max_age_seconds, or each server's status)."""
    spec = data.get("arbitrage") if isinstance(data, dict) else None
    body: dict[str, Any] = {
        "error": refusal.message,
        "code": NOT_EXECUTABLE_CODE,
        "reason": str(refusal.reason),
        "transaction_id": None,
        "operation_id": None,
        "state": None,
        "analysis_id": spec.get("operation_id") if isinstance(spec, dict) else None,
        **refusal.details,
    }
    return Response(body, status=status.HTTP_409_CONFLICT)


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


class FillSerializer(serializers.Serializer):
    server = serializers.CharField()
    side = serializers.CharField()
    symbol = serializers.CharField()
    quantity = serializers.FloatField(allow_null=True)
    price = serializers.FloatField(allow_null=True, help_text="The execution price the exchange confirmed.")
    notional = serializers.FloatField(allow_null=True)
    fee = serializers.FloatField(allow_null=True)
    fee_asset = serializers.CharField(allow_null=True)
    executed_at = serializers.CharField(allow_null=True)


class RealisedSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text="The symbol's quote currency.")
    gross_profit = serializers.FloatField(help_text="Sold notional - bought notional.")
    fees = serializers.FloatField(help_text="Every leg's fee.")
    net_profit = serializers.FloatField(help_text="gross_profit - fees.")


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
    analysis_id = serializers.IntegerField(
        allow_null=True, help_text="The arbitrage analysis (an operation) whose opportunity this executes."
    )
    opportunity = serializers.IntegerField(allow_null=True, help_text="Its index among the analysis's opportunities.")
    parameters = serializers.DictField(
        help_text="The request as run; for an opportunity, `arbitrage` also keeps the analysed figures "
        "(symbol, buy_on, sell_on, size, prices, expected_net_profit, expected_net_bps, quoted_at)."
    )
    fills = FillSerializer(many=True, help_text="Each confirmed leg's fill, as its exchange confirmed it.")
    realised = RealisedSerializer(
        allow_null=True,
        help_text="sells - buys - fees, when every leg filled one symbol's equal quantities with fees in its quote "
        "currency; null otherwise.",
    )
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
            "key; only an execution that aborted (nothing moved) lets it be tried again. An opportunity is not "
            f'executed (409 `{{"code": "{NOT_EXECUTABLE_CODE}", "reason", "error", "analysis_id"}}`, nothing '
            f'logged or sent) when its quotes are older than `arbitrage.max_age_seconds` (reason "'
            f'{NotExecutableReason.STALE}", with `age_seconds` and `max_age_seconds`), or when either of its '
            f'exchanges is not {" or ".join(sorted(EXECUTABLE_STATUSES))} (reason "'
            f"{NotExecutableReason.SERVER_NOT_ONLINE}\", with `servers`: each one's status; maintenance, "
            "offline, degraded, pending, unhealthy and unknown all refuse). Every refusal names its `reason`."
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
                    f'`{{"code": "{RefusalReason.ALREADY_EXECUTED}"|"{RefusalReason.IN_PROGRESS}"|'
                    f'"{NOT_EXECUTABLE_CODE}", "reason", "error", "transaction_id", "operation_id", "state"}}` '
                    f'(reason "{NotExecutableReason.STALE}" or "{NotExecutableReason.SERVER_NOT_ONLINE}": nothing '
                    "was logged, the ids are null)."
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
        except OpportunityNotExecutable as refusal:
            return not_executable_response(refusal, request.data)
        except RuntimeError as exc:
            logger.warning("coordinator: cannot run a transaction: %s", exc)
            return Response({"error": "the fleet is not running here"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        tx = submitted.transaction
        response = Response(transaction_json(tx), status=TRANSACTION_STATUS.get(tx.state, status.HTTP_202_ACCEPTED))
        if submitted.replayed:
            response[REPLAYED_HEADER] = "true"
        return response
