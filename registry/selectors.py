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

from django.core.paginator import Paginator
from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.http import QueryDict

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
# The server page shows each capability list a page at a time (a server may list up to
# MCP_MAX_CAPABILITIES_PER_LIST of each), and names at most this many added/removed entries per history row.
CAPABILITY_PAGE_SIZE = 50
CHANGED_NAMES_SHOWN = 10
# The error for an unknown tool names at most this many of the server's tools.
KNOWN_TOOLS_NAMED = 50


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


# The overview's status tiles, worst first: every status has one, so the tiles add up to the fleet (a server has
# exactly one status; a disabled server's is "disabled"). These are shown even at zero; the others only when some
# server has them.
STATUS_ORDER = [
    ServerStatus.OFFLINE,
    ServerStatus.UNHEALTHY,
    ServerStatus.PENDING,
    ServerStatus.DEGRADED,
    ServerStatus.UNKNOWN,
    ServerStatus.MAINTENANCE,
    ServerStatus.DISABLED,
    ServerStatus.ONLINE,
]
ALWAYS_SHOWN_STATUSES = {ServerStatus.ONLINE, ServerStatus.DEGRADED, ServerStatus.OFFLINE}
# What a status means when the server gave no reason, so the overview always says something in words.
STATUS_MEANINGS = {
    ServerStatus.OFFLINE: "not answering",
    ServerStatus.UNHEALTHY: "answers, but its checks' expectations fail",
    ServerStatus.PENDING: "checks failing, within the retry budget before it is called down",
    ServerStatus.DEGRADED: "slow or partly failing",
    ServerStatus.UNKNOWN: "not checked yet",
    ServerStatus.MAINTENANCE: "in a maintenance window: no alerts",
    ServerStatus.DISABLED: "disabled: not connected",
}


def fleet_summary() -> dict[str, Any]:
    """Counters over the whole fleet, whatever the table's filters: one tile per status (they add up to `total`),
    each linking to the table filtered on it, and the tools on offer."""
    counts = dict(Server.objects.values_list("status").annotate(n=Count("id")).order_by())
    tiles = [
        {
            "status": status.value,
            "label": status.label,
            "count": counts.get(status.value, 0),
            "shown": status in ALWAYS_SHOWN_STATUSES or counts.get(status.value, 0) > 0,
        }
        for status in STATUS_ORDER
    ]
    tools = Capability.objects.filter(kind=CapabilityKind.TOOL)
    return {
        "total": sum(counts.values()),
        "tiles": tiles,
        # "6 servers: 4 online + 1 degraded + 1 maintenance", so the reader sees the tiles add up.
        "breakdown": " + ".join(f"{tile['count']} {tile['label'].lower()}" for tile in tiles if tile["count"]),
        "tools": tools.count(),
        "distinct_tools": tools.values("name").distinct().count(),
    }


def status_display() -> dict[str, Any]:
    """What the overview's script needs to keep the tiles and the attention list live (JSON-safe)."""
    return {
        "order": [status.value for status in STATUS_ORDER],
        "labels": {status.value: status.label for status in ServerStatus},
        "always_shown": sorted(status.value for status in ALWAYS_SHOWN_STATUSES),
        "meanings": {status.value: meaning for status, meaning in STATUS_MEANINGS.items()},
    }


def servers_needing_attention() -> list[dict[str, str]]:
    """Every server that is not online, worst status first, with its reason in words (the status's meaning when it
    gave none): the overview's answer to "what is wrong"."""
    rank = {status.value: index for index, status in enumerate(STATUS_ORDER)}
    rows = Server.objects.exclude(status=ServerStatus.ONLINE).values("name", "status", "status_reason")
    return [
        {
            "name": row["name"],
            "status": row["status"],
            "reason": row["status_reason"] or STATUS_MEANINGS.get(row["status"], ""),
        }
        for row in sorted(rows, key=lambda row: (rank.get(row["status"], len(rank)), row["name"]))
    ]


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
    """What a snapshot added and removed compared with the one before it, per kind, by name (URI for resources).

    The first CHANGED_NAMES_SHOWN names each way, and how many more: a server that swapped its thousand tools
    makes one line, not a page of names."""
    if previous is None:
        return {"first": True, "kinds": [], "other": False}
    kinds = []
    for field, keys in _SNAPSHOT_KEYS.items():
        now, before = _names(getattr(snapshot, field), *keys), _names(getattr(previous, field), *keys)
        added, removed = sorted(now - before), sorted(before - now)
        if added or removed:
            change: dict[str, Any] = {
                "kind": field.replace("_", " "),
                "added": added[:CHANGED_NAMES_SHOWN],
                "removed": removed[:CHANGED_NAMES_SHOWN],
            }
            # Counts of the names left out, only where some were.
            if len(added) > CHANGED_NAMES_SHOWN:
                change["added_more"] = len(added) - CHANGED_NAMES_SHOWN
            if len(removed) > CHANGED_NAMES_SHOWN:
                change["removed_more"] = len(removed) - CHANGED_NAMES_SHOWN
            kinds.append(change)
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


@dataclass(frozen=True)
class CapabilityList:
    """One list of the server page, one page of it: the entries shown, where they sit in the list, the pager's
    links (query strings that keep the other lists' pages), and what discovery's limits left out of it."""

    field: str
    items: list[dict[str, Any]]
    raw: list[Mapping[str, Any]]  # the shown entries as stored
    count: int  # entries kept by discovery
    number: int
    pages: int
    start: int
    end: int
    first_url: str
    previous_url: str
    next_url: str
    last_url: str
    truncated: str

    @property
    def paginated(self) -> bool:
        return self.pages > 1


# Each list of a snapshot: its page parameter, its anchor on the page, and how an entry is shown.
_CAPABILITY_LISTS: dict[str, tuple[str, str, Any]] = {
    "tools": ("tools_page", "tools", _tool_view),
    "resources": ("resources_page", "resources", _resource_view),
    "resource_templates": ("templates_page", "resource-templates", _resource_template_view),
    "prompts": ("prompts_page", "prompts", _prompt_view),
}


def _page_url(query: QueryDict, parameter: str, number: int, anchor: str) -> str:
    changed = query.copy()
    changed[parameter] = str(number)
    return f"?{changed.urlencode()}#{anchor}"


def capability_list(
    snapshot: CapabilitySnapshot, field: str, query: QueryDict, page_size: int = CAPABILITY_PAGE_SIZE
) -> CapabilityList:
    """One page of one list (`?tools_page=N`...). A page number that is not one (or past the end) shows the
    nearest page, as a pager link would, rather than an error."""
    parameter, anchor, view = _CAPABILITY_LISTS[field]
    entries = getattr(snapshot, field) or []
    page = Paginator(entries, page_size).get_page(query.get(parameter))
    raw = [entry for entry in page.object_list if isinstance(entry, Mapping)]
    pages = page.paginator.num_pages
    report = (snapshot.truncation or {}).get(field) or {}
    return CapabilityList(
        field=field,
        items=[view(entry) for entry in raw],
        raw=raw,
        count=len(entries),
        number=page.number,
        pages=pages,
        start=page.start_index(),
        end=page.end_index(),
        first_url=_page_url(query, parameter, 1, anchor),
        previous_url=_page_url(query, parameter, page.previous_page_number(), anchor) if page.has_previous() else "",
        next_url=_page_url(query, parameter, page.next_page_number(), anchor) if page.has_next() else "",
        last_url=_page_url(query, parameter, pages, anchor),
        truncated=str(report.get("message", "")),
    )


def latest_capabilities(snapshot: CapabilitySnapshot | None, query: QueryDict | None = None) -> dict[str, Any] | None:
    """The latest discovery as the server page shows it: each list one page at a time."""
    if snapshot is None:
        return None
    query = query if query is not None else QueryDict()
    return {
        "snapshot": snapshot,
        "server_info": pretty_json(snapshot.server_info) if snapshot.server_info else "",
        "capabilities": pretty_json(snapshot.capabilities) if snapshot.capabilities else "",
        **{field: capability_list(snapshot, field, query) for field in _CAPABILITY_LISTS},
    }


def tool_schemas(tools: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Each tool's input schema, for the call forms the page builds (only the tools on the page)."""
    return {tool["name"]: _pick(tool, "inputSchema", "input_schema") or {} for tool in tools if "name" in tool}


def server_detail_context(server: Server, *, can_call: bool = False, query: QueryDict | None = None) -> dict[str, Any]:
    """Everything the server page shows. Secrets stay out: only the names of env variables and headers.
    `query` is the page's GET parameters: which page of each capability list to show."""
    snapshot = CapabilitySnapshot.objects.latest_for(server)
    latest = latest_capabilities(snapshot, query)
    return {
        "server": server,
        "can_call": can_call,
        "tool_schemas": tool_schemas(latest["tools"].raw) if can_call and latest is not None else {},
        "status_history": list(StatusChange.objects.recent_for(server, STATUS_HISTORY_LIMIT)),
        "env_keys": sorted(server.env or {}),
        "header_keys": sorted(server.headers or {}),
        "metadata_json": pretty_json(server.metadata) if server.metadata else "",
        "latest": latest,
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


def tool_input_schemas(server: Server) -> dict[str, dict[str, Any] | None] | None:
    """Tool name -> input schema (None when the tool declares none usable) from the server's latest discovery; None
    when it was never discovered."""
    snapshot = CapabilitySnapshot.objects.latest_for(server)
    if snapshot is None:
        return None
    schemas: dict[str, dict[str, Any] | None] = {}
    for item in snapshot.tools:
        schema = _pick(item, "inputSchema", "input_schema")
        schemas[str(item.get("name"))] = schema if isinstance(schema, dict) else None
    return schemas


def prompt_arguments_of(server: Server) -> dict[str, list[dict[str, Any]]] | None:
    """Prompt name -> its declared arguments ({name, description, required}) from the server's latest discovery;
    None when it was never discovered."""
    snapshot = CapabilitySnapshot.objects.latest_for(server)
    if snapshot is None:
        return None
    return {
        str(prompt.get("name")): _prompt_view(prompt)["arguments"]
        for prompt in snapshot.prompts
        if isinstance(prompt, Mapping)
    }


def known_prompts_message(server: Server, prompt: str) -> str:
    prompts = Capability.objects.filter(server=server, kind=CapabilityKind.PROMPT)
    names = list(prompts.order_by("name").values_list("name", flat=True)[:KNOWN_TOOLS_NAMED])
    shown = prompt if len(prompt) <= 60 else prompt[:57] + "..."
    if not names:
        return f"{server.name} offers no prompts (or has not been discovered yet), so it has no prompt {shown!r}."
    more = prompts.count() - len(names) if len(names) == KNOWN_TOOLS_NAMED else 0
    listed = ", ".join(names) + (f" and {more:,} more" if more else "")
    return f"{server.name} has no prompt {shown!r}. Its prompts: {listed}."


def known_tools_message(server: Server, tool: str) -> str:
    tools = Capability.objects.filter(server=server, kind=CapabilityKind.TOOL)
    names = list(tools.order_by("name").values_list("name", flat=True)[:KNOWN_TOOLS_NAMED])
    shown = tool if len(tool) <= 60 else tool[:57] + "..."
    if not names:
        return f"{server.name} offers no tools (or has not been discovered yet), so it has no tool {shown!r}."
    more = tools.count() - len(names) if len(names) == KNOWN_TOOLS_NAMED else 0
    listed = ", ".join(names) + (f" and {more:,} more" if more else "")
    return f"{server.name} has no tool {shown!r}. Its tools: {listed}."


# --- the fleet-wide catalogue -------------------------------------------------------------------------------------

CATALOGUE_PAGE_SIZE = 50
# Where each kind's list sits on the server page.
_CATALOGUE_ANCHORS = {
    CapabilityKind.TOOL: "tools",
    CapabilityKind.RESOURCE: "resources",
    CapabilityKind.RESOURCE_TEMPLATE: "resource-templates",
    CapabilityKind.PROMPT: "prompts",
}


def catalogue_entries(query: str = "", kind: str = "") -> Any:
    """Every tool, resource, template and prompt the fleet offers now (the index of each server's latest discovery),
    one entry per kind and name, with how many servers offer it. `query` is a case-insensitive substring of the name,
    title, description or URI ("quote" finds get_quote). A values queryset, so a page of it is cut in the database."""
    entries = Capability.objects.all()
    if kind:
        entries = entries.filter(kind=kind)
    if query:
        entries = entries.filter(
            Q(name__icontains=query)
            | Q(title__icontains=query)
            | Q(description__icontains=query)
            | Q(identifier__icontains=query)
        )
    return (
        entries.values("kind", "name")
        .annotate(server_count=Count("server", distinct=True), description=Max("description"), title=Max("title"))
        .order_by("name", "kind")
    )


def catalogue_offers(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A page of catalogue entries with the servers offering each (name, status, and the resource URI or template
    each one lists), in one query for the page."""
    page = list(entries)
    if not page:
        return []
    match = Q()
    for entry in page:
        match |= Q(kind=entry["kind"], name=entry["name"])
    offered: dict[tuple[str, str], list[dict[str, str]]] = {}
    rows = (
        Capability.objects.filter(match)
        .values("kind", "name", "identifier", "server__name", "server__status")
        .order_by("server__name")
    )
    for row in rows:
        offered.setdefault((row["kind"], row["name"]), []).append(
            {"name": row["server__name"], "status": row["server__status"], "identifier": row["identifier"]}
        )
    return [
        {
            "kind": entry["kind"],
            "kind_label": CapabilityKind(entry["kind"]).label,
            "anchor": _CATALOGUE_ANCHORS.get(entry["kind"], ""),
            "name": entry["name"],
            "title": entry["title"] or "",
            "description": entry["description"] or "",
            "server_count": entry["server_count"],
            "servers": offered.get((entry["kind"], entry["name"]), []),
        }
        for entry in page
    ]
