"""Which servers a query asks, in which order, and what the registry knows of each (database reads, sync)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fusion.models import SourceTrust
from fusion.quality import decayed_trust
from fusion.query import FusionQuery, QueryError
from registry.models import CapabilityKind, Server
from registry.selectors import tool_schemas_for
from registry.tool_arguments import argument_errors

# Healthy first: a priority strategy takes the first valid answer, and a reader scans the table from the top.
STATUS_ORDER = ["online", "degraded", "unknown", "pending", "maintenance", "unhealthy", "offline"]


@dataclass(frozen=True)
class SourcePlan:
    server: str
    status: str
    priority: int
    trust: float
    output_schema: Mapping[str, Any] | None
    request_timeout_seconds: float


def _order(server: Server) -> tuple[int, int, str]:
    rank = STATUS_ORDER.index(server.status) if server.status in STATUS_ORDER else len(STATUS_ORDER)
    return (rank, -server.priority, server.name)


def _candidates(query: FusionQuery) -> list[Server]:
    rows = Server.objects.filter(enabled=True)
    if query.servers:
        found = {server.name: server for server in Server.objects.filter(name__in=query.servers)}
        unknown = [name for name in query.servers if name not in found]
        if unknown:
            raise QueryError({"servers": [f"No such server: {', '.join(unknown)}."]})
        disabled = [name for name in query.servers if not found[name].enabled]
        if disabled:
            raise QueryError({"servers": [f"Not enabled: {', '.join(disabled)}."]})
        return [found[name] for name in query.servers]
    if query.tag:
        rows = rows.filter(tags__name=query.tag)
    if query.server_type:
        rows = rows.filter(server_type=query.server_type)
    if query.tool:
        rows = rows.filter(capabilities__kind=CapabilityKind.TOOL, capabilities__name=query.tool)
    else:
        rows = rows.filter(capabilities__kind=CapabilityKind.RESOURCE, capabilities__identifier=query.resource)
    servers = list(rows.distinct())
    if not servers:
        what = f"tool {query.tool!r}" if query.tool else f"resource {query.resource!r}"
        narrowed = f" with tag {query.tag!r}" if query.tag else ""
        narrowed += f" of type {query.server_type!r}" if query.server_type else ""
        raise QueryError({"tool" if query.tool else "resource": [f"No enabled server{narrowed} offers {what}."]})
    return servers


def plan_sources(query: FusionQuery, now: datetime) -> list[SourcePlan]:
    """The sources, healthy first; QueryError (400) for unknown servers, a tool they lack, or bad arguments."""
    servers = sorted(_candidates(query), key=_order)
    trust_rows = {
        row.server_id: row
        for row in SourceTrust.objects.filter(server__in=servers, subject=query.subject).only(
            "server_id", "score", "updated_at"
        )
    }
    schemas = tool_schemas_for(servers, query.tool) if query.tool else {}
    discovered = (
        set(
            Server.objects.filter(pk__in=[s.pk for s in servers], capabilities__isnull=False).values_list(
                "pk", flat=True
            )
        )
        if query.servers and query.tool
        else set()
    )
    plans: list[SourcePlan] = []
    lacking: list[str] = []
    for server in servers:
        output_schema = None
        if query.tool:
            offers, input_schema, output_schema = schemas[server.pk]
            if query.servers and not offers and server.pk in discovered:
                lacking.append(server.name)  # discovered, and the tool is not among what it offers
                continue
            errors = argument_errors(input_schema, dict(query.arguments)) if offers else {}
            if errors:
                named = {name if name == "arguments" else f"arguments.{name}": m for name, m in errors.items()}
                raise QueryError(named)
        row = trust_rows.get(server.pk)
        plans.append(
            SourcePlan(
                server=server.name,
                status=server.status,
                priority=server.priority,
                trust=decayed_trust(row.score, row.updated_at, now) if row else decayed_trust(0, None, now),
                output_schema=output_schema,
                request_timeout_seconds=server.request_timeout_seconds,
            )
        )
    if lacking:
        raise QueryError({"servers": [f"Does not offer tool {query.tool!r}: {', '.join(lacking)}."]})
    return plans
