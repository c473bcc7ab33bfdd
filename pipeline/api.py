"""The pipeline's REST API: event history (replay), the pipeline's metrics, and the fleet snapshot a live page
starts from (with the sequence numbers to resume the live streams after it)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet import application
from pipeline.consumers import OPEN_SOCKETS
from pipeline.events import check_stream_name
from pipeline.metrics import PIPELINE_METRICS
from pipeline.observers import FLEET_SEEN, FLEET_STATUS
from pipeline.stores import MAX_READ, event_store
from registry.permissions import IsViewer
from registry.selectors import fleet_live_rows


class EventQuerySerializer(serializers.Serializer):
    stream = serializers.CharField(max_length=200, help_text="An exact stream name, e.g. quotes.BTC-USD")
    after = serializers.IntegerField(required=False, min_value=0, max_value=2**62, help_text="Sequence number")
    since = serializers.DateTimeField(required=False, help_text="ISO 8601 time")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_READ, default=100)

    def validate_stream(self, value: str) -> str:
        try:
            return check_stream_name(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from error


EVENT_SHAPE = inline_serializer(
    "PipelineEvent",
    {
        "stream": serializers.CharField(),
        "seq": serializers.IntegerField(),
        "kind": serializers.CharField(),
        "server": serializers.CharField(allow_null=True),
        "at": serializers.DateTimeField(),
        "payload": serializers.DictField(),
    },
)


class EventHistoryView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        summary="Events of one stream, in order, from the history",
        parameters=[EventQuerySerializer],
        responses={
            200: inline_serializer(
                "EventPage",
                {
                    "stream": serializers.CharField(),
                    "results": EVENT_SHAPE.__class__(many=True),
                    "missed": serializers.IntegerField(help_text="Events after `after` that fell out of retention"),
                    "first_seq": serializers.IntegerField(allow_null=True),
                    "last_seq": serializers.IntegerField(allow_null=True),
                    "next_after": serializers.IntegerField(allow_null=True),
                },
            ),
            400: None,
        },
    )
    def get(self, request: Request) -> Response:
        query = EventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        store = event_store()
        try:
            page = store.read(
                params["stream"], after=params.get("after"), since=params.get("since"), limit=params["limit"]
            )
        finally:
            store.close()
        results = [event.as_json() for event in page.events]
        return Response(
            {
                "stream": params["stream"],
                "results": results,
                "missed": page.missed,
                "first_seq": page.first_seq,
                "last_seq": page.last_seq,
                "next_after": results[-1]["seq"] if results else params.get("after"),
            }
        )


class PipelineMetricsView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(summary="The pipeline's numbers in this process", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        running = application.running()
        pipeline = running.pipeline if running is not None else None
        # The bus's counters are this process's PIPELINE_METRICS; a web process without a pipeline has its sockets'.
        body: dict[str, Any] = pipeline.stats() if pipeline is not None else PIPELINE_METRICS.snapshot()
        body["running"] = pipeline is not None
        sockets = [socket.describe() for socket in list(OPEN_SOCKETS)]
        body["sockets"] = {
            "open": len(sockets),
            "paused": sum(1 for s in sockets if s["paused"]),
            "buffered": sum(s["buffered"] for s in sockets),
            "max_buffered": max((s["buffered"] for s in sockets), default=0),
        }
        return Response(body)


class FleetLiveView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        summary="Every server's live row, and where to resume fleet.status and fleet.seen on /ws/events/ after it",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        store = event_store()
        try:
            # Sequence numbers first, rows after: a change in between is replayed (applying it twice is harmless).
            after = {FLEET_STATUS: store.last_seq(FLEET_STATUS), FLEET_SEEN: store.last_seq(FLEET_SEEN)}
        finally:
            store.close()
        return Response({"servers": fleet_live_rows(), "after": after})
