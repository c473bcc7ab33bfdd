"""The fusion API: ask (operators), run history with statistics, strategies and trust (viewers)."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fusion.engine import answer_json, run_query_async
from fusion.models import FusionRun
from fusion.query import FusionQuerySerializer, QueryError, parse_query
from fusion.selectors import filtered_runs, run_statistics, trust_rows
from fusion.strategies import all_strategies
from fusion.tool_safety import RULE as STATE_CHANGING_RULE
from orchestrator_site.async_api import AsyncAPIView, Caller, json_answer
from registry.permissions import IsViewer, Role
from registry.request_bodies import query_filters

logger = logging.getLogger(__name__)


class FusionAnswerSerializer(serializers.Serializer):
    """A fused answer: what POST /api/fusion/query/ answers and each run of the history shows. Made by
    `engine.answer_json` (the cache keeps it as made); declared here for the schema, and a test keeps the two equal."""

    run_id = serializers.IntegerField()
    value = serializers.JSONField(allow_null=True, help_text="The fused value (null when there is none).")
    quorum_met = serializers.BooleanField()
    confidence = serializers.FloatField(allow_null=True)
    sources = serializers.ListField(
        child=serializers.DictField(), help_text="Per source: what it answered and how it counted."
    )
    strategy = serializers.CharField()
    options = serializers.DictField()
    tool = serializers.CharField(allow_null=True)
    resource = serializers.CharField(allow_null=True)
    dispersion = serializers.FloatField(allow_null=True, help_text="Of the one fused field, if one.")
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True, min_length=2, max_length=2)
    quorum = serializers.IntegerField()
    valid_answers = serializers.IntegerField(allow_null=True)
    decision = serializers.CharField(allow_null=True, help_text="What the strategy decided, in a sentence.")
    error = serializers.CharField(allow_null=True, help_text="Why there is no usable value (then the answer is 502).")
    duration_ms = serializers.FloatField()
    created_at = serializers.DateTimeField()
    cached = serializers.BooleanField(help_text="Answered from the cache (cache_ttl_seconds).")
    shared = serializers.BooleanField(help_text="Answered by an identical query running at the same time.")

    def get_fields(self) -> dict[str, serializers.Field]:
        # Declared here, not as an attribute: `fields` is the serializer's own map of its fields.
        return super().get_fields() | {
            "fields": serializers.DictField(
                child=serializers.DictField(), help_text="Per fused field: value, method, dispersion, interval."
            )
        }

    def to_representation(self, run: FusionRun) -> dict[str, Any]:
        return answer_json(run)


class FusionRunSerializer(FusionAnswerSerializer):
    """One run of the history with the normalised query and the explanation of every decision."""

    query = serializers.DictField()
    explanation = serializers.DictField()

    def to_representation(self, run: FusionRun) -> dict[str, Any]:
        return {**answer_json(run), "query": run.query, "explanation": run.explanation}


class FusionQueryView(AsyncAPIView):
    """Served on the event loop (the API fast lane for tokens): the fan-out is awaited, holding no thread."""

    required_role = Role.OPERATOR

    @extend_schema(
        operation_id="fusion_query",
        summary="Ask several servers the same question and fuse their answers",
        description=(
            "200 with the fused value; 502 with what came in when the quorum is not met or the strategy cannot "
            "decide; 400 naming each bad field. Servers in maintenance are not asked (listed as excluded, reason "
            "maintenance). A tool that changes state is refused (400 on tool) unless allow_state_changing is true: "
            + STATE_CHANGING_RULE
        ),
        request=FusionQuerySerializer,
        responses={
            200: FusionAnswerSerializer,
            400: OpenApiTypes.OBJECT,
            502: FusionAnswerSerializer,
            503: OpenApiTypes.OBJECT,
        },
    )
    async def post(self, request: HttpRequest, caller: Caller, body: Any) -> JsonResponse:
        try:
            query = parse_query(body)
            answer = await run_query_async(query, caller=caller.username)
        except QueryError as exc:
            raise serializers.ValidationError(exc.errors) from None
        except RuntimeError as exc:  # the fleet loop is not running in this process
            logger.warning("fusion: cannot ask the fleet: %s", exc)
            return json_answer({"error": "the fleet is not running here"}, status.HTTP_503_SERVICE_UNAVAILABLE)
        return json_answer(answer, status.HTTP_502_BAD_GATEWAY if answer["error"] else status.HTTP_200_OK)


class RunFilters(serializers.Serializer):
    tool = serializers.CharField(required=False, help_text="Runs asking this tool.")
    strategy = serializers.CharField(required=False)
    quorum_met = serializers.ChoiceField(
        choices=["true", "false"], required=False, allow_blank=True, error_messages={"invalid_choice": "true or false"}
    )


class FusionRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every fused answer, newest first, with figures over the filtered runs; one run with its explanation."""

    serializer_class = FusionAnswerSerializer
    permission_classes = [IsViewer]
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        query_filters(RunFilters, self.request.query_params)
        return filtered_runs(self.request.query_params)

    @extend_schema(summary="Fusion runs, newest first, with statistics", parameters=[RunFilters])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().list(request, *args, **kwargs)
        response.data["statistics"] = run_statistics(self.get_queryset())
        return response

    @extend_schema(summary="One fusion run with its explanation", responses=FusionRunSerializer)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(FusionRunSerializer(self.get_object()).data)


class StrategyListView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        operation_id="fusion_strategies",
        summary="The fusion strategies and their options",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": [strategy.describe() for strategy in all_strategies()]})


class TrustListView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        operation_id="fusion_trust",
        summary="Each source's trust per question (?subject=tool:get_quote)",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": trust_rows(request.query_params.get("subject") or None)})
