"""Every write to the registry goes through one of these functions: views, the API, commands and the fleet loop."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from registry.connections.capabilities import DiscoveredCapabilities
from registry.connections.outcomes import CallOutcome
from registry.models import (
    CallRecord,
    Capability,
    CapabilityKind,
    CapabilitySnapshot,
    Server,
    ServerStatus,
    Tag,
)

logger = logging.getLogger(__name__)


def _tags_set(*, server: Server, tags: Iterable[str]) -> None:
    tag_objects = [Tag.objects.get_or_create(name=name)[0] for name in sorted(set(tags))]
    server.tags.set(tag_objects)


@transaction.atomic
def server_create(
    *,
    name: str,
    transport: str,
    command: str = "",
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: str = "",
    url: str = "",
    headers: dict[str, str] | None = None,
    display_name: str = "",
    description: str = "",
    server_type: str = "generic",
    tags: Iterable[str] = (),
    priority: int = 100,
    enabled: bool = True,
    metadata: dict[str, Any] | None = None,
    request_timeout_seconds: float = 10.0,
    max_concurrency: int = 8,
) -> Server:
    server = Server.objects.create(
        name=name,
        transport=transport,
        command=command,
        args=list(args),
        env=dict(env or {}),
        cwd=cwd,
        url=url,
        headers=dict(headers or {}),
        display_name=display_name,
        description=description,
        server_type=server_type,
        priority=priority,
        enabled=enabled,
        metadata=dict(metadata or {}),
        request_timeout_seconds=request_timeout_seconds,
        max_concurrency=max_concurrency,
        status=ServerStatus.UNKNOWN if enabled else ServerStatus.DISABLED,
    )
    _tags_set(server=server, tags=tags)
    return server


@transaction.atomic
def server_update(*, server: Server, **changes: Any) -> Server:
    """Apply validated changes. Secrets not mentioned are kept, so a partial update never wipes them."""
    tags = changes.pop("tags", None)
    for field, value in changes.items():
        setattr(server, field, value)
    if "enabled" in changes:
        if not server.enabled:
            server.status, server.status_reason = ServerStatus.DISABLED, "disabled by an operator"
        elif server.status == ServerStatus.DISABLED:
            server.status, server.status_reason = ServerStatus.UNKNOWN, ""
    server.save()
    if tags is not None:
        _tags_set(server=server, tags=tags)
    return server


def server_delete(*, server: Server) -> None:
    server.delete()


def _content_hash(discovered: DiscoveredCapabilities) -> str:
    # Only what the server offers counts as a change; when it was seen does not.
    material = {
        "protocol_version": discovered.protocol_version,
        "server_info": discovered.server_info,
        "instructions": discovered.instructions,
        "capabilities": discovered.capabilities,
        "tools": discovered.tools,
        "resources": discovered.resources,
        "resource_templates": discovered.resource_templates,
        "prompts": discovered.prompts,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _capability_rows(server: Server, snapshot: CapabilitySnapshot) -> list[Capability]:
    rows: dict[tuple[str, str], Capability] = {}

    def add(kind: str, name: str, identifier: str, item: dict[str, Any]) -> None:
        rows[(kind, identifier)] = Capability(
            server=server,
            snapshot=snapshot,
            kind=kind,
            name=name[:300],
            identifier=identifier[:1000],
            title=str(item.get("title") or "")[:300],
            description=str(item.get("description") or ""),
        )

    for tool in snapshot.tools:
        add(CapabilityKind.TOOL, tool["name"], tool["name"], tool)
    for resource in snapshot.resources:
        add(CapabilityKind.RESOURCE, resource.get("name") or resource["uri"], resource["uri"], resource)
    for template in snapshot.resource_templates:
        uri_template = template.get("uriTemplate", template.get("uri_template", ""))
        add(CapabilityKind.RESOURCE_TEMPLATE, template.get("name") or uri_template, uri_template, template)
    for prompt in snapshot.prompts:
        add(CapabilityKind.PROMPT, prompt["name"], prompt["name"], prompt)
    return list(rows.values())


@dataclass(frozen=True)
class CapabilitiesRecorded:
    snapshot: CapabilitySnapshot
    changed: bool


@transaction.atomic
def capabilities_record(
    *, server: Server, discovered: DiscoveredCapabilities, at: datetime | None = None
) -> CapabilitiesRecorded:
    """Keep what a discovery found: a new snapshot when anything changed, else confirm the latest one."""
    at = at or timezone.now()
    content_hash = _content_hash(discovered)
    latest = CapabilitySnapshot.objects.latest_for(server)
    server.protocol_version = discovered.protocol_version
    server.last_seen_at = at
    server.save(update_fields=["protocol_version", "last_seen_at", "updated_at"])
    if latest is not None and latest.content_hash == content_hash:
        latest.last_confirmed_at = at
        latest.save(update_fields=["last_confirmed_at"])
        return CapabilitiesRecorded(snapshot=latest, changed=False)
    snapshot = CapabilitySnapshot.objects.create(
        server=server,
        discovered_at=at,
        last_confirmed_at=at,
        protocol_version=discovered.protocol_version,
        server_info=discovered.server_info or {},
        instructions=discovered.instructions or "",
        capabilities=discovered.capabilities,
        tools=discovered.tools,
        resources=discovered.resources,
        resource_templates=discovered.resource_templates,
        prompts=discovered.prompts,
        content_hash=content_hash,
    )
    server.capabilities.all().delete()
    Capability.objects.bulk_create(_capability_rows(server, snapshot))
    return CapabilitiesRecorded(snapshot=snapshot, changed=True)


def server_status_record(
    *,
    server_id: int,
    status: str,
    reason: str = "",
    protocol_version: str | None = None,
    seen_at: datetime | None = None,
    error: str | None = None,
) -> bool:
    """Write a status the fleet observed. A conditional update, so a deleted server or a disabled one is left alone."""
    changes: dict[str, Any] = {"status": status, "status_reason": reason[:500], "updated_at": timezone.now()}
    if protocol_version:
        changes["protocol_version"] = protocol_version
    if seen_at is not None:
        changes["last_seen_at"] = seen_at
    if error is not None:
        changes["last_error"] = error
    query = Server.objects.filter(id=server_id, enabled=True)
    return query.update(**changes) == 1


def call_outcomes_record(outcomes: Sequence[CallOutcome]) -> int:
    """Write a batch of call outcomes in one statement; outcomes of servers deleted meanwhile are dropped."""
    if not outcomes:
        return 0
    keys = {int(outcome.server_key) for outcome in outcomes if outcome.server_key.isdigit()}
    existing = set(Server.objects.filter(id__in=keys).values_list("id", flat=True))
    rows = [
        CallRecord(
            server_id=int(outcome.server_key),
            operation=outcome.operation[:64],
            target_name=outcome.target_name[:300],
            started_at=outcome.started_at,
            latency_ms=outcome.latency_ms,
            ok=outcome.ok,
            error_kind=outcome.error_kind or "",
            error_message=outcome.error_message[:2000],
        )
        for outcome in outcomes
        if outcome.server_key.isdigit() and int(outcome.server_key) in existing
    ]
    CallRecord.objects.bulk_create(rows, batch_size=500)
    return len(rows)
