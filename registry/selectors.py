"""Reads for the dashboard and the live fleet socket: everything a page shows, shaped so templates only print.

Capability snapshots store the MCP SDK's objects as JSON; depending on how they were dumped the keys are camelCase
(`inputSchema`, the wire form) or snake_case (`input_schema`, the pydantic field names), so both are read.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, OuterRef, Q, Subquery

from registry.models import (
    CallRecord,
    Capability,
    CapabilityKind,
    CapabilitySnapshot,
    Server,
    ServerQuerySet,
    ServerStatus,
    StatusChange,
    Tag,
)
from registry.page_sections import server_section_scripts, server_sections

CAPABILITY_HISTORY_LIMIT = 20
STATUS_HISTORY_LIMIT = 30
RECENT_CALLS_LIMIT = 20


# --- the overview -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetFilters:
    """The overview's GET filters; empty strings mean "any"."""

    server_type: str = ""
    tag: str = ""
    status: str = ""
    capability: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> FleetFilters:
        def value(key: str) -> str:
            return (query.get(key) or "").strip()

        return cls(server_type=value("type"), tag=value("tag"), status=value("status"), capability=value("capability"))

    @property
    def active(self) -> bool:
        return any((self.server_type, self.tag, self.status, self.capability))


def fleet_overview_rows(filters: FleetFilters | None = None) -> ServerQuerySet:
    servers = Server.objects.for_dashboard()
    if filters is None:
        return servers
    if filters.server_type:
        servers = servers.of_type(filters.server_type)
    if filters.tag:
        servers = servers.with_tag(filters.tag)
    if filters.status:
        servers = servers.with_status(filters.status)
    if filters.capability:
        servers = servers.with_capability(filters.capability)
    return servers


def fleet_summary() -> dict[str, int]:
    """Counters over the whole fleet, whatever the table's filters."""
    troubled = [ServerStatus.OFFLINE, ServerStatus.DEGRADED, ServerStatus.PENDING, ServerStatus.UNHEALTHY]
    counts = Server.objects.aggregate(
        total=Count("id"),
        online=Count("id", filter=Q(status=ServerStatus.ONLINE)),
        troubled=Count("id", filter=Q(status__in=troubled)),
    )
    tools = Capability.objects.filter(kind=CapabilityKind.TOOL)
    counts["tools"] = tools.count()
    counts["distinct_tools"] = tools.values("name").distinct().count()
    return counts


def fleet_filter_options() -> dict[str, Any]:
    return {
        "types": list(Server.objects.order_by("server_type").values_list("server_type", flat=True).distinct()),
        "tags": list(Tag.objects.filter(servers__isnull=False).distinct().values_list("name", flat=True)),
        "statuses": ServerStatus.choices,
    }


def fleet_live_rows() -> list[dict[str, Any]]:
    """What the live socket sends on connect: one row per server, JSON-safe."""
    return [
        {
            "name": server.name,
            "status": server.status,
            "status_reason": server.status_reason,
            "last_seen_at": server.last_seen_at.isoformat() if server.last_seen_at else None,
            "protocol_version": server.protocol_version,
            "enabled": server.enabled,
            "counts": {
                "tools": server.tool_count,
                "resources": server.resource_count,
                "resource_templates": server.resource_template_count,
                "prompts": server.prompt_count,
            },
        }
        for server in Server.objects.for_dashboard()
    ]


# --- one server ---------------------------------------------------------------------------------------------------


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _pick(raw: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if raw.get(key) not in (None, ""):
            return raw[key]
    return None


def _tool_view(raw: Mapping[str, Any]) -> dict[str, Any]:
    input_schema = _pick(raw, "inputSchema", "input_schema")
    output_schema = _pick(raw, "outputSchema", "output_schema")
    return {
        "name": raw.get("name", ""),
        "title": _pick(raw, "title") or "",
        "description": raw.get("description") or "",
        "input_schema": pretty_json(input_schema) if input_schema is not None else "",
        "output_schema": pretty_json(output_schema) if output_schema is not None else "",
    }


def _resource_view(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "uri": raw.get("uri", ""),
        "name": raw.get("name", ""),
        "title": _pick(raw, "title") or "",
        "mime_type": _pick(raw, "mimeType", "mime_type") or "",
        "description": raw.get("description") or "",
    }


def _resource_template_view(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "uri_template": _pick(raw, "uriTemplate", "uri_template") or "",
        "name": raw.get("name", ""),
        "title": _pick(raw, "title") or "",
        "mime_type": _pick(raw, "mimeType", "mime_type") or "",
        "description": raw.get("description") or "",
    }


def _prompt_view(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": raw.get("name", ""),
        "title": _pick(raw, "title") or "",
        "description": raw.get("description") or "",
        "arguments": [
            {
                "name": argument.get("name", ""),
                "description": argument.get("description") or "",
                "required": bool(argument.get("required")),
            }
            for argument in raw.get("arguments") or []
        ],
    }


def _names(items: Iterable[Mapping[str, Any]], *keys: str) -> set[str]:
    return {str(_pick(item, *keys)) for item in items if _pick(item, *keys) is not None}


# How each list in a snapshot is keyed when comparing two snapshots.
_SNAPSHOT_KEYS: dict[str, tuple[str, ...]] = {
    "tools": ("name",),
    "resources": ("uri",),
    "resource_templates": ("uriTemplate", "uri_template"),
    "prompts": ("name",),
}


def snapshot_changes(snapshot: CapabilitySnapshot, previous: CapabilitySnapshot | None) -> dict[str, Any]:
    """What a snapshot added and removed compared with the one before it, per kind, by name (URI for resources)."""
    if previous is None:
        return {"first": True, "kinds": [], "other": False}
    kinds = []
    for field, keys in _SNAPSHOT_KEYS.items():
        now, before = _names(getattr(snapshot, field), *keys), _names(getattr(previous, field), *keys)
        added, removed = sorted(now - before), sorted(before - now)
        if added or removed:
            kinds.append({"kind": field.replace("_", " "), "added": added, "removed": removed})
    # Same names but a new hash: a description, schema or server info changed.
    other = not kinds and snapshot.content_hash != previous.content_hash
    return {"first": False, "kinds": kinds, "other": other}


def capability_history(server: Server, limit: int = CAPABILITY_HISTORY_LIMIT) -> list[dict[str, Any]]:
    # One more than shown, so the oldest shown row can still be compared with its predecessor.
    snapshots = list(CapabilitySnapshot.objects.filter(server=server).order_by("-discovered_at", "-id")[: limit + 1])
    history = []
    for index, snapshot in enumerate(snapshots[:limit]):
        previous = snapshots[index + 1] if index + 1 < len(snapshots) else None
        history.append(
            {
                "snapshot": snapshot,
                "counts": {
                    "tools": len(snapshot.tools),
                    "resources": len(snapshot.resources),
                    "resource_templates": len(snapshot.resource_templates),
                    "prompts": len(snapshot.prompts),
                },
                "changes": snapshot_changes(snapshot, previous),
            }
        )
    return history


def latest_capabilities(snapshot: CapabilitySnapshot | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {
        "snapshot": snapshot,
        "server_info": pretty_json(snapshot.server_info) if snapshot.server_info else "",
        "capabilities": pretty_json(snapshot.capabilities) if snapshot.capabilities else "",
        "tools": [_tool_view(tool) for tool in snapshot.tools],
        "resources": [_resource_view(resource) for resource in snapshot.resources],
        "resource_templates": [_resource_template_view(template) for template in snapshot.resource_templates],
        "prompts": [_prompt_view(prompt) for prompt in snapshot.prompts],
    }


def tool_schemas(snapshot: CapabilitySnapshot | None) -> dict[str, Any]:
    """Each tool's input schema, for the call forms the page builds."""
    if snapshot is None:
        return {}
    return {tool["name"]: _pick(tool, "inputSchema", "input_schema") or {} for tool in snapshot.tools}


def server_detail_context(server: Server, *, can_call: bool = False) -> dict[str, Any]:
    """Everything the server page shows. Secrets stay out: only the names of env variables and headers."""
    snapshot = CapabilitySnapshot.objects.latest_for(server)
    return {
        "server": server,
        "can_call": can_call,
        "tool_schemas": tool_schemas(snapshot) if can_call else {},
        "status_history": list(StatusChange.objects.recent_for(server, STATUS_HISTORY_LIMIT)),
        "env_keys": sorted(server.env or {}),
        "header_keys": sorted(server.headers or {}),
        "metadata_json": pretty_json(server.metadata) if server.metadata else "",
        "latest": latest_capabilities(snapshot),
        "history": capability_history(server),
        "recent_calls": list(CallRecord.objects.recent_for(server, RECENT_CALLS_LIMIT)),
        "sections": server_sections(),
        "section_scripts": server_section_scripts(),
    }


# --- tool calls -------------------------------------------------------------------------------------------------


def tool_schemas_of(server: Server, tool: str) -> tuple[bool, dict[str, Any] | None, dict[str, Any] | None]:
    """(whether the server's latest discovery offers `tool`, its input schema, its output schema)."""
    snapshot = CapabilitySnapshot.objects.latest_for(server)
    for item in snapshot.tools if snapshot is not None else []:
        if item.get("name") == tool:
            input_schema = _pick(item, "inputSchema", "input_schema")
            output_schema = _pick(item, "outputSchema", "output_schema")
            return (
                True,
                input_schema if isinstance(input_schema, dict) else None,
                output_schema if isinstance(output_schema, dict) else None,
            )
    return False, None, None


ToolSchemas = tuple[bool, dict[str, Any] | None, dict[str, Any] | None]


@functools.lru_cache(maxsize=4_096)
def _snapshot_tool_schemas(snapshot_id: int) -> dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Tool name -> (input schema, output schema) of one snapshot. A snapshot's tools never change (a discovery
    that finds something else makes a new snapshot), so each is read and parsed once per process."""
    tools = CapabilitySnapshot.objects.filter(pk=snapshot_id).values_list("tools", flat=True).first() or []
    found: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    for item in tools:
        input_schema = _pick(item, "inputSchema", "input_schema")
        output_schema = _pick(item, "outputSchema", "output_schema")
        found[item.get("name", "")] = (
            input_schema if isinstance(input_schema, dict) else None,
            output_schema if isinstance(output_schema, dict) else None,
        )
    return found


def tool_schemas_for(servers: Iterable[Server], tool: str) -> dict[int, ToolSchemas]:
    """tool_schemas_of for many servers in one query: server id -> (offers, input schema, output schema)."""
    ids = [server.pk for server in servers]
    latest = CapabilitySnapshot.objects.filter(server=OuterRef("pk")).order_by("-discovered_at", "-id").values("id")[:1]
    snapshot_ids = dict(Server.objects.filter(pk__in=ids).annotate(latest=Subquery(latest)).values_list("pk", "latest"))
    found: dict[int, ToolSchemas] = {}
    for server_id in ids:
        snapshot_id = snapshot_ids.get(server_id)
        schemas = _snapshot_tool_schemas(snapshot_id).get(tool) if snapshot_id else None
        found[server_id] = (True, *schemas) if schemas is not None else (False, None, None)
    return found


def tool_input_schema(server: Server, tool: str) -> tuple[bool, dict[str, Any] | None]:
    """(whether the server's latest discovery offers `tool`, its input schema)."""
    snapshot = CapabilitySnapshot.objects.latest_for(server)
    for item in snapshot.tools if snapshot is not None else []:
        if item.get("name") == tool:
            schema = _pick(item, "inputSchema", "input_schema")
            return True, schema if isinstance(schema, dict) else None
    return False, None


def known_tools_message(server: Server, tool: str) -> str:
    names = sorted(Capability.objects.filter(server=server, kind=CapabilityKind.TOOL).values_list("name", flat=True))
    shown = tool if len(tool) <= 60 else tool[:57] + "..."
    if not names:
        return f"{server.name} offers no tools (or has not been discovered yet), so it has no tool {shown!r}."
    return f"{server.name} has no tool {shown!r}. Its tools: {', '.join(names)}."
