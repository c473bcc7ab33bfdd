"""The health API: every server's figures, one server's samples, a check on demand, maintenance windows."""

from __future__ import annotations

from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet import application
from fleet.calls import run_on_fleet
from health.ending import NotInForce, maintenance_window_end
from health.models import HealthSample, MaintenanceWindow, SampleKind
from health.selectors import fleet_health, tool_figures
from mcp_client import Deadline
from registry.models import Server, StatusChange
from registry.permissions import IsOperator, IsViewer, ReadForViewersWriteForOperators

MAX_SAMPLES = 5_000


# Whose latency a figure is: the synthetic check call, or the liveness probe (one enum in the OpenAPI schema).
LATENCY_SOURCES = ["check", "probe"]


# The health figures as the API answers them; `selectors.fleet_health` and `tool_figures` make them, these declare
# them for the schema (tests/health/test_health_shape.py keeps the two equal).
class LatencySerializer(serializers.Serializer):
    """Latency percentiles of one kind of check (successful ones) over a recent window."""

    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)
    approximate = serializers.BooleanField(help_text="False: exact percentiles of the raw samples in the window.")
    source = serializers.ChoiceField(
        choices=LATENCY_SOURCES, help_text="check: the synthetic tool call; probe: the liveness probe."
    )
    tool = serializers.CharField(allow_blank=True, help_text="The synthetic check's tool (blank for the probe).")
    label = serializers.CharField(help_text='What was measured, in words: "check get_quote" or "probe".')
    window_seconds = serializers.FloatField(help_text="The window the percentiles cover, up to now.")
    samples = serializers.IntegerField(help_text="Successful checks in the window.")


class TrendSerializer(serializers.Serializer):
    direction = serializers.CharField(
        allow_null=True, help_text="improving, stable or degrading; null: too little data (see reason)"
    )
    slope_ms_per_hour = serializers.FloatField(allow_null=True)
    confidence = serializers.FloatField(allow_null=True, help_text="1 - the slope's p-value.")
    points = serializers.IntegerField()
    reason = serializers.CharField(help_text='Why this direction, in words ("too little data: 2 of 10 minutes").')
    significant = serializers.BooleanField(help_text="The slope differs from zero (t-test, 5 %).")
    material = serializers.BooleanField(help_text="The slope moves the level by at least 10 % and 10 ms per hour.")
    source = serializers.ChoiceField(choices=LATENCY_SOURCES, help_text="Whose latency: as latency_source.")
    window_seconds = serializers.FloatField(help_text="The window the trend is fitted over.")
    min_window_seconds = serializers.FloatField(help_text="No trend from less data than this.")


class PredictionSerializer(serializers.Serializer):
    metric = serializers.CharField()
    threshold = serializers.FloatField()
    at = serializers.DateTimeField(help_text="When the latency target is expected to be crossed.")
    earliest = serializers.DateTimeField(help_text="The band's start: its upper bound reaches the target.")
    latest = serializers.DateTimeField(allow_null=True, help_text="The band's end (null: beyond 24 h).")
    band = serializers.FloatField(help_text="The share of outcomes the band from earliest to latest holds (0.8).")
    source = serializers.ChoiceField(choices=LATENCY_SOURCES)
    basis = serializers.CharField(help_text='The assumption, in words: "if the trend of the last 30 min continues".')


class ServerFiguresSerializer(serializers.Serializer):
    """One server's health: availability over 24 hours, 7 and 30 days; latency, trend and prediction over the
    recent window, of what decided its status."""

    server = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.CharField(allow_blank=True)
    availability = serializers.DictField(
        child=serializers.FloatField(allow_null=True), help_text="Per window (24h, 7d, 30d): checks that passed."
    )
    latency_source = serializers.ChoiceField(
        choices=LATENCY_SOURCES,
        help_text="What latency_ms measures: the synthetic check call when the server has one (it decides the "
        "status), else the liveness probe.",
    )
    latency_ms = LatencySerializer(help_text="The latency that decides the status.")
    probe_latency_ms = LatencySerializer(help_text="The liveness probe's latency, beside it.")
    latency_target_ms = serializers.FloatField(help_text="Slower than this (median of the last checks): degraded.")
    success_rate = serializers.FloatField(allow_null=True)
    checks_24h = serializers.IntegerField()
    trend = TrendSerializer()
    prediction = PredictionSerializer(allow_null=True, help_text="Null with prediction_reason saying why.")
    prediction_reason = serializers.CharField(allow_blank=True, help_text="Why there is no prediction (blank: one).")


class FleetHealthSerializer(serializers.Serializer):
    results = ServerFiguresSerializer(many=True)


class ToolFiguresSerializer(serializers.Serializer):
    tool = serializers.CharField()
    calls = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)


class StatusChangeSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    source = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        # "from" is a Python keyword, so these two are added by name.
        return super().get_fields() | {"from": serializers.CharField(), "to": serializers.CharField()}


class ServerHealthSerializer(ServerFiguresSerializer):
    """One server's figures, per tool too, with its last 100 status changes."""

    tools = ToolFiguresSerializer(many=True)
    status_history = StatusChangeSerializer(many=True)


class FleetHealthView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        operation_id="health_fleet",
        summary="Every server's health: status, availability, latency, success rate, trend, prediction",
        responses={200: FleetHealthSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": fleet_health()})


class ServerHealthView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        operation_id="health_server",
        summary="One server's health, with figures per tool",
        responses={200: ServerHealthSerializer, 404: None},
    )
    def get(self, request: Request, name: str) -> Response:
        server = get_object_or_404(Server, name=name)
        (figures,) = fleet_health([server])
        figures["tools"] = tool_figures(server)
        figures["status_history"] = [
            {
                "at": change.at.isoformat(),
                "from": change.from_status,
                "to": change.to_status,
                "reason": change.reason,
                "source": change.source,
            }
            for change in StatusChange.objects.recent_for(server, 100)
        ]
        return Response(figures)


class SampleQuery(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; default: the last hour")
    kind = serializers.ChoiceField(choices=SampleKind.choices, required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_SAMPLES, default=1_000)


class ServerSamplesView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        summary="One server's raw check samples since a time",
        parameters=[SampleQuery],
        responses={200: OpenApiTypes.OBJECT, 400: None, 404: None},
    )
    def get(self, request: Request, name: str) -> Response:
        server = get_object_or_404(Server, name=name)
        query = SampleQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        since = params.get("since") or timezone.now() - timedelta(hours=1)
        rows = HealthSample.objects.filter(server=server, at__gte=since)
        if params.get("kind"):
            rows = rows.filter(kind=params["kind"])
        results = [
            {
                "at": row.at.isoformat(),
                "kind": row.kind,
                "ok": row.ok,
                "latency_ms": row.latency_ms,
                "tool": row.tool,
                "error": row.error,
                "in_maintenance": row.in_maintenance,
            }
            for row in rows.order_by("at")[: params["limit"]]
        ]
        return Response({"server": server.name, "since": since.isoformat(), "results": results})


class CheckNowView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(
        summary="Check a server now (operators)",
        request=None,
        responses={200: OpenApiTypes.OBJECT, 404: None, 503: None},
    )
    def post(self, request: Request, name: str) -> Response:
        server = get_object_or_404(Server, name=name)
        running = application.running()
        monitor = running.monitor if running is not None else None
        if monitor is None or server.name not in monitor.tracked:
            return Response({"detail": "the health monitor does not check this server now"}, status=503)
        # A check ends within its own timeouts (liveness, synthetic call); the minute is only a ceiling.
        return Response(
            run_on_fleet(
                monitor.check_now(server.name), deadline=Deadline.within(60.0), what=f"a check of {server.name!r}"
            )
        )


class MaintenanceWindowSerializer(serializers.ModelSerializer):
    servers = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Server.objects.all(), required=False)
    open_now = serializers.SerializerMethodField()

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id",
            "name",
            "servers",
            "server_type",
            "tag",
            "starts_at",
            "ends_at",
            "recurrence",
            "created_by",
            "open_now",
        ]
        read_only_fields = ["created_by"]

    def get_open_now(self, window: MaintenanceWindow) -> bool:
        return window.is_open(timezone.now())

    def validate(self, attrs: dict) -> dict:
        starts = attrs.get("starts_at", getattr(self.instance, "starts_at", None))
        ends = attrs.get("ends_at", getattr(self.instance, "ends_at", None))
        if starts and ends and ends <= starts:
            raise serializers.ValidationError({"ends_at": "must be after starts_at"})
        # A window with no scope covers no server: almost surely a form sent half filled, so it is named.
        servers = attrs["servers"] if "servers" in attrs else (self.instance.servers.all() if self.instance else [])
        server_type = attrs.get("server_type", getattr(self.instance, "server_type", ""))
        tag = attrs.get("tag", getattr(self.instance, "tag", ""))
        if not servers and not server_type and not tag:
            raise serializers.ValidationError({"servers": "name servers, a server type or a tag"})
        return attrs


class MaintenanceWindowViewSet(viewsets.ModelViewSet):
    """Maintenance windows: viewers read, operators plan, end and delete them."""

    serializer_class = MaintenanceWindowSerializer
    permission_classes = [ReadForViewersWriteForOperators]
    queryset = MaintenanceWindow.objects.prefetch_related("servers").order_by("-starts_at")

    def perform_create(self, serializer: MaintenanceWindowSerializer) -> None:
        serializer.save(created_by=self.request.user.get_username())

    @extend_schema(
        summary="End an open window now (operators; a repeating one stops repeating); 409 if it is not open",
        request=None,
        responses=MaintenanceWindowSerializer,
    )
    @action(detail=True, methods=["post"])
    def end(self, request: Request, pk: str | None = None) -> Response:
        try:
            window = maintenance_window_end(window=self.get_object())
        except NotInForce as refused:
            return Response({"detail": str(refused)}, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(window).data)
