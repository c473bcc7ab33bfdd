"""REST API of the registry. Thin: validation in serializers, writes in services, MCP through the fleet API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.connection_check import check_connection
from registry.discovery import discover_and_record, first_discovery
from registry.filters import ServerFilter
from registry.models import CapabilitySnapshot, Server
from registry.permissions import IsAdmin, IsOperator, ReadForViewersWriteForOperators, role_of
from registry.policies import (
    name_conflicts,
    require_may_change_secret_holder,
    require_may_define,
    require_may_export,
)
from registry.serializers import (
    CapabilitySnapshotSerializer,
    CapabilitySnapshotSummarySerializer,
    ConnectionTestRequestSerializer,
    ConnectionTestResultSerializer,
    ServerDefinitionSerializer,
    ServerSerializer,
)
from registry.services import server_create, server_delete, server_update
from registry.transfer import ImportDocumentError, registry_export, registry_import

_TRUE = {"1", "true", "yes", "on"}

DiscoveryOutcomeSerializer = inline_serializer(
    name="DiscoveryOutcome",
    fields={
        "ok": serializers.BooleanField(),
        "changed": serializers.BooleanField(required=False),
        "snapshot_id": serializers.IntegerField(required=False),
        # List -> what discovery's limits left out of it (MCP_MAX_CAPABILITIES_PER_LIST...); absent lists are whole.
        "truncated": serializers.DictField(child=serializers.CharField(), required=False),
        "error": serializers.CharField(required=False),
    },
)


def _flag(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    return default if raw is None else raw.strip().lower() in _TRUE


@extend_schema(tags=["servers"])
class ServerViewSet(viewsets.ModelViewSet):
    """Servers of the fleet. Lookup by name; filter by type, tag, status, transport, capability."""

    lookup_field = "name"
    serializer_class = ServerSerializer
    filterset_class = ServerFilter
    permission_classes = [ReadForViewersWriteForOperators]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return Server.objects.for_dashboard()

    def _respond_with(self, server: Server, *, discovery: dict[str, Any] | None, code: int) -> Response:
        fresh = self.get_queryset().get(pk=server.pk)
        body = ServerSerializer(fresh).data
        if discovery is not None:
            body["discovery"] = discovery
        return Response(body, status=code)

    @extend_schema(
        request=ServerDefinitionSerializer,
        responses={201: ServerSerializer},
        parameters=[OpenApiParameter("discover", OpenApiTypes.BOOL, description="Discover right away (default true).")],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        definition = ServerDefinitionSerializer(data=request.data)
        definition.is_valid(raise_exception=True)
        require_may_define(role=role_of(request.user), server=None, transport=definition.validated_data["transport"])
        conflicts = name_conflicts(name=definition.validated_data["name"])
        if conflicts:
            raise ValidationError(conflicts)
        server = server_create(**definition.validated_data)  # the live sessions follow once it is committed
        discovery = None
        if server.enabled and _flag(request, "discover", default=True):
            discovery = first_discovery(server=server, caller=request.user.get_username())
        return self._respond_with(server, discovery=discovery, code=status.HTTP_201_CREATED)

    @extend_schema(request=ServerDefinitionSerializer, responses=ServerSerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        server = self.get_object()
        partial = kwargs.pop("partial", False)
        role = role_of(request.user)
        require_may_change_secret_holder(role=role, server=server)
        definition = ServerDefinitionSerializer(instance=server, data=request.data, partial=partial)
        definition.is_valid(raise_exception=True)
        changes = dict(definition.validated_data)
        require_may_define(role=role, server=server, transport=changes.get("transport"))
        conflicts = name_conflicts(name=changes.get("name", server.name), server=server)
        if conflicts:
            raise ValidationError(conflicts)
        # The live session follows the definition once it is committed: restarted on change, closed when disabled.
        server = server_update(server=server, by=request.user.get_username(), **changes)
        return self._respond_with(server, discovery=None, code=status.HTTP_200_OK)

    @extend_schema(request=ServerDefinitionSerializer, responses=ServerSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        server = self.get_object()
        role = role_of(request.user)
        require_may_define(role=role, server=server)
        require_may_change_secret_holder(role=role, server=server)
        server_delete(server=server)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: DiscoveryOutcomeSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def discover(self, request: Request, name: str | None = None) -> Response:
        """Connect (if needed) and discover the server's tools, resources and prompts now."""
        server = self.get_object()
        if not server.enabled:
            raise ValidationError({"enabled": ["The server is disabled; enable it before discovering."]})
        outcome = discover_and_record(server=server, caller=request.user.get_username())
        return Response(outcome, status=status.HTTP_200_OK if outcome["ok"] else status.HTTP_502_BAD_GATEWAY)

    @extend_schema(request=ConnectionTestRequestSerializer, responses={200: ConnectionTestResultSerializer})
    @action(detail=False, methods=["post"], url_path="test-connection", permission_classes=[IsOperator])
    def test_connection(self, request: Request) -> Response:
        """Try a definition before saving it: the MCP handshake and listing, with what was found or why it failed
        (`ok`). Validated and allowed as a create (or, with `server`, as that server's update) would be; bounded
        in time whatever the definition's timeouts; nothing is saved or recorded."""
        stored_name = request.data.get("server") if isinstance(request.data, dict) else None
        stored = Server.objects.filter(name=stored_name).first() if isinstance(stored_name, str) else None
        if stored_name is not None and stored is None:
            raise ValidationError({"server": [f"No server is named {str(stored_name)[:100]!r}."]})
        role = role_of(request.user)
        if stored is not None:
            require_may_change_secret_holder(role=role, server=stored)
        body = ConnectionTestRequestSerializer(instance=stored, data=request.data)
        body.is_valid(raise_exception=True)
        definition = dict(body.validated_data)
        definition.pop("server", None)
        require_may_define(role=role, server=stored, transport=definition["transport"])
        if stored is not None:
            # Secrets not typed again are the stored ones (validation made sure the endpoint they belong to stayed).
            for field in ("env", "headers"):
                definition.setdefault(field, dict(getattr(stored, field)))
            definition.setdefault("oauth", dict(stored.oauth))
        return Response(check_connection(definition=definition))

    @extend_schema(responses=CapabilitySnapshotSerializer)
    @action(detail=True, methods=["get"])
    def capabilities(self, request: Request, name: str | None = None) -> Response:
        """The latest discovered capabilities, with full input and output schemas."""
        server = self.get_object()
        snapshot = CapabilitySnapshot.objects.latest_for(server)
        if snapshot is None:
            raise NotFound(f"{server.name} has not been discovered yet: POST to its discover action.")
        return Response(CapabilitySnapshotSerializer(snapshot).data)

    @extend_schema(responses=CapabilitySnapshotSummarySerializer(many=True))
    @action(detail=True, methods=["get"], url_path="capabilities/history")
    def capability_history(self, request: Request, name: str | None = None) -> Response:
        """Every distinct set of capabilities the server has offered, newest first."""
        server = self.get_object()
        snapshots = CapabilitySnapshot.objects.filter(server=server).order_by("-discovered_at", "-id")
        return Response(CapabilitySnapshotSummarySerializer(snapshots, many=True).data)


@extend_schema(
    tags=["registry"],
    parameters=[OpenApiParameter("include_secrets", OpenApiTypes.BOOL, description="Admins only.")],
    responses={200: OpenApiTypes.OBJECT},
)
class RegistryExportView(APIView):
    """The registry as a versioned JSON document; secrets only when asked for, and only for admins."""

    permission_classes = [IsOperator]

    def get(self, request: Request) -> Response:
        include_secrets = _flag(request, "include_secrets")
        require_may_export(role=role_of(request.user), include_secrets=include_secrets)
        return Response(registry_export(include_secrets=include_secrets))


@extend_schema(
    tags=["registry"],
    request=OpenApiTypes.OBJECT,
    parameters=[OpenApiParameter("dry_run", OpenApiTypes.BOOL, description="Validate and report, write nothing.")],
    responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT},
)
class RegistryImportView(APIView):
    """Create or update servers from an export document: validated in full first, all or nothing."""

    # A document may define stdio servers, i.e. commands to run.
    permission_classes = [IsAdmin]

    def post(self, request: Request) -> Response:
        try:
            report = registry_import(
                document=request.data, dry_run=_flag(request, "dry_run"), role=role_of(request.user)
            )
        except ImportDocumentError as error:
            return Response({"detail": str(error), "problems": error.problems}, status=status.HTTP_400_BAD_REQUEST)
        return Response(report.as_dict())
