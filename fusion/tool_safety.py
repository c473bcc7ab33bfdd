"""Which tools change state, so fan-out does not call them on every server at once without an explicit opt-in.

Asking several servers the same question is harmless for a read; for a tool that places, confirms or cancels an
order it multiplies the change. The rule (shown in the OpenAPI help text and on the fusion page):

- a tool is state-changing on a server when its MCP annotations say `readOnlyHint: false` or
  `destructiveHint: true`, or when the server's metadata names it in `state_changing_tools` (the operator's word,
  for servers that do not annotate their tools);
- `readOnlyHint: true` (and not named in the metadata) is a read;
- a tool that declares neither is fanned out like a read: most servers do not annotate their read tools, and
  requiring the opt-in for every one of them would make the opt-in a reflex. An operator who knows better names it
  in the server's metadata.

A tool is state-changing for a query when any server asked says so.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import OuterRef, Subquery

from registry.models import CapabilitySnapshot, Server

METADATA_KEY = "state_changing_tools"
OPT_IN_FIELD = "allow_state_changing"
RULE = (
    "A tool changes state when its MCP annotations say readOnlyHint: false or destructiveHint: true, or when the "
    f"server's metadata names it in {METADATA_KEY!r}; readOnlyHint: true, or no annotation, is fanned out as a read."
)


def state_changing_reason(server: str, annotations: Mapping[str, Any] | None, metadata: Any, tool: str) -> str:
    """Why `tool` changes state on `server` (in words), or "" when it is not declared to."""
    named = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    if isinstance(named, list | tuple) and tool in named:
        return f"{server} names it in its metadata ({METADATA_KEY})"
    if not isinstance(annotations, Mapping):
        return ""
    if annotations.get("destructiveHint") is True and annotations.get("readOnlyHint") is not True:
        return f"{server} annotates it destructiveHint: true"
    if annotations.get("readOnlyHint") is False:
        return f"{server} annotates it readOnlyHint: false"
    return ""


SnapshotKey = tuple[int, str]  # (id, content hash): an id alone may be reused after a rollback


@functools.lru_cache(maxsize=4_096)
def _snapshot_annotations(snapshot: SnapshotKey) -> dict[str, Mapping[str, Any] | None]:
    """Tool name -> its annotations in one snapshot. A snapshot never changes (a discovery that finds something
    else makes a new one), so each is read once per process."""
    snapshot_id, _ = snapshot
    tools = CapabilitySnapshot.objects.filter(pk=snapshot_id).values_list("tools", flat=True).first() or []
    found: dict[str, Mapping[str, Any] | None] = {}
    for item in tools:
        if isinstance(item, dict):
            annotations = item.get("annotations")
            found[str(item.get("name", ""))] = annotations if isinstance(annotations, dict) else None
    return found


def latest_snapshot_ids(server_ids: Iterable[int]) -> dict[int, SnapshotKey | None]:
    """Server id -> its latest snapshot's (id, content hash), None when it was never discovered."""
    latest = CapabilitySnapshot.objects.filter(server=OuterRef("pk")).order_by("-discovered_at", "-id")
    rows = (
        Server.objects.filter(pk__in=list(server_ids))
        .annotate(latest=Subquery(latest.values("id")[:1]), latest_hash=Subquery(latest.values("content_hash")[:1]))
        .values_list("pk", "latest", "latest_hash")
    )
    return {pk: (snapshot_id, content_hash) if snapshot_id else None for pk, snapshot_id, content_hash in rows}


def state_changing_servers(servers: Iterable[Server], tool: str) -> dict[int, str]:
    """Server id -> why `tool` changes state there, for the servers where it does (from their latest discovery and
    their metadata)."""
    servers = list(servers)
    snapshots = latest_snapshot_ids(server.pk for server in servers)
    found: dict[int, str] = {}
    for server in servers:
        snapshot = snapshots.get(server.pk)
        annotations = _snapshot_annotations(snapshot).get(tool) if snapshot else None
        reason = state_changing_reason(server.name, annotations, server.metadata, tool)
        if reason:
            found[server.pk] = reason
    return found


def state_changing_tools(servers_by_tool: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """For the fusion page's picker: tool name -> why it changes state (the first server that says so), for the
    tools among `servers_by_tool` (tool -> server names) that do."""
    names = {name for servers in servers_by_tool.values() for name in servers}
    servers = {server.name: server for server in Server.objects.filter(name__in=names).only("pk", "name", "metadata")}
    snapshots = latest_snapshot_ids(server.pk for server in servers.values())
    found: dict[str, str] = {}
    for tool, offering in servers_by_tool.items():
        for name in offering:
            server = servers.get(name)
            if server is None:
                continue
            snapshot = snapshots.get(server.pk)
            annotations = _snapshot_annotations(snapshot).get(tool) if snapshot else None
            reason = state_changing_reason(name, annotations, server.metadata, tool)
            if reason:
                found[tool] = reason
                break
    return found
