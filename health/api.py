"""The health API: every server's figures, one server's samples, a check on demand, maintenance windows."""

from __future__ import annotations

from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet import application
from fleet.calls import run_on_fleet
from health.models import HealthSample, MaintenanceWindow, SampleKind
from health.selectors import fleet_health, tool_figures
from mcp_client import Deadline
from registry.models import Server, StatusChange
from registry.permissions import IsOperator, IsViewer, ReadForViewersWriteForOperators

MAX_SAMPLES = 5_000


class FleetHealthView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        operation_id="health_fleet",
        summary="Every server's health: status, availability, latency, success rate, trend, prediction",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": fleet_health()})


class ServerHealthView(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        operation_id="health_server",
        summary="One server's health, with figures per tool",
        responses={200: OpenApiTypes.OBJECT, 404: None},
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
        return attrs


class MaintenanceWindowViewSet(viewsets.ModelViewSet):
    """Maintenance windows: viewers read, operators plan them."""

    serializer_class = MaintenanceWindowSerializer
    permission_classes = [ReadForViewersWriteForOperators]
    queryset = MaintenanceWindow.objects.prefetch_related("servers").order_by("-starts_at")

    def perform_create(self, serializer: MaintenanceWindowSerializer) -> None:
        serializer.save(created_by=self.request.user.get_username())
