"""Every write to the registry goes through one of these functions: views, the API, commands and the fleet loop."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from mcp_client.capabilities import DiscoveredCapabilities
from mcp_client.outcomes import CallOutcome
from registry import announcements
from registry.announcements import StatusTransition
from registry.models import (
    DEFAULT_MAX_CONCURRENCY,
    CallRecord,
    Capability,
    CapabilityKind,
    CapabilitySnapshot,
    OAuthGrant,
    Server,
    ServerStatus,
    StatusChange,
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
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    oauth: dict[str, Any] | None = None,
    oauth_client_secret: str = "",
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
        oauth=dict(oauth or {}),
        oauth_client_secret=oauth_client_secret,
        status=ServerStatus.UNKNOWN if enabled else ServerStatus.DISABLED,
    )
    _tags_set(server=server, tags=tags)
    announcements.registry_changed()
    return server


_FLEET_WRITTEN_FIELDS = frozenset(
    {"id", "status", "status_reason", "status_changed_at", "protocol_version", "last_seen_at", "last_error"}
)


@transaction.atomic
def server_update(*, server: Server, by: str = "an operator", **changes: Any) -> Server:
    """Apply validated changes. Secrets not mentioned are kept, so a partial update never wipes them.

    Enabling or disabling moves the status too (disabled; unknown while it connects again), through the same
    compare-and-set as every other status write, so it cannot overwrite a status the health monitor wrote meanwhile
    and it is kept in the history and announced like any other transition.
    """
    tags = changes.pop("tags", None)
    # An OAuth grant belongs to the endpoint and the settings it was given for (registry/oauth_store.py).
    regranted = any(name in changes and changes[name] != getattr(server, name) for name in ("url", "oauth"))
    for field, value in changes.items():
        setattr(server, field, value)
    if regranted:
        OAuthGrant.objects.filter(server=server).delete()
    toggled = "enabled" in changes
    if toggled and not server.enabled and server.status != ServerStatus.DISABLED:
        # Written while the row is still enabled: the compare-and-set leaves disabled servers alone.
        _status_by_operator(server, ServerStatus.DISABLED, f"disabled by {by}", by=by)
    # Only the definition: what the fleet writes (status, last seen, protocol, last error) is the fleet's, and an
    # instance read before a check must not write back what that check replaced.
    server.save(update_fields=[f.name for f in Server._meta.concrete_fields if f.name not in _FLEET_WRITTEN_FIELDS])
    if toggled and server.enabled and server.status == ServerStatus.DISABLED:
        _status_by_operator(server, ServerStatus.UNKNOWN, f"enabled by {by}; connecting", by=by)
    if tags is not None:
        _tags_set(server=server, tags=tags)
    announcements.registry_changed()
    return server


def _status_by_operator(server: Server, status: str, reason: str, *, by: str) -> None:
    transition = server_status_transition(server_id=server.pk, status=status, reason=reason, source=by)
    if transition is not None:
        transaction.on_commit(lambda: announcements.status_changed(transition))
        # The instance follows the row, so the save around this does not write the old status back.
        server.status, server.status_reason = transition.to_status, transition.reason
        server.status_changed_at = Server.objects.filter(pk=server.pk).values_list("status_changed_at", flat=True)[0]


@transaction.atomic
def server_delete(*, server: Server) -> None:
    """Delete a server and everything recorded about it.

    The row is locked first and the related rows are collected inside the same transaction: the fleet writes
    snapshots, statuses and call records for it concurrently, and a row added between collecting and deleting
    would otherwise fail the delete on its foreign key.
    """
    Server.objects.select_for_update().filter(pk=server.pk).exists()
    server.delete()
    announcements.registry_changed()


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
    if discovered.truncation:
        # Only when something was cut, so snapshots of servers within the limits keep the hash they always had.
        material["truncation"] = discovered.truncation_dict()
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
    previous: CapabilitySnapshot | None = None


@transaction.atomic
def capabilities_record(
    *, server: Server | int, discovered: DiscoveredCapabilities, at: datetime | None = None
) -> CapabilitiesRecorded | None:
    """Keep what a discovery found: a new snapshot when anything changed, else confirm the latest one.

    None when the server was deleted meanwhile (a discovery may finish after its server is gone). The server row
    is locked, so two discoveries finishing together (an operator's and the supervisor's) make one snapshot.
    """
    at = at or timezone.now()
    server_id = server if isinstance(server, int) else server.pk
    row = Server.objects.select_for_update().filter(pk=server_id).first()
    if row is None:
        return None
    if discovered.truncation:
        # One line per discovery, whichever lists were cut: the server is not trusted to fill the log either.
        logger.warning(
            "MCP server %r: discovery kept only part of what it listed: %s",
            row.name,
            " | ".join(report.message for report in discovered.truncation.values()),
        )
    content_hash = _content_hash(discovered)
    latest = CapabilitySnapshot.objects.latest_for(row)
    Server.objects.filter(pk=server_id).update(
        protocol_version=discovered.protocol_version, last_seen_at=at, updated_at=timezone.now()
    )
    if latest is not None and latest.content_hash == content_hash:
        latest.last_confirmed_at = at
        latest.save(update_fields=["last_confirmed_at"])
        return CapabilitiesRecorded(snapshot=latest, changed=False, previous=latest)
    snapshot = CapabilitySnapshot.objects.create(
        server=row,
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
        truncation=discovered.truncation_dict(),
        content_hash=content_hash,
    )
    row.capabilities.all().delete()
    Capability.objects.bulk_create(_capability_rows(row, snapshot))
    return CapabilitiesRecorded(snapshot=snapshot, changed=True, previous=latest)


def server_status_transition(
    *,
    server_id: int,
    status: str,
    reason: str,
    source: str,
    expected: Iterable[str] | None = None,
    protocol_version: str | None = None,
    error: str | None = None,
) -> StatusTransition | None:
    """Move a server to `status` with a compare-and-set, and keep the transition in its history.

    The update only applies while the row still holds the status that was read (so two writers never interleave:
    the loser re-reads and decides again), and only to an enabled server (a disabled or deleted one is left alone:
    None). `expected`, when given, lists the statuses this transition is allowed from. A write that changes only the
    reason updates it in place: `status_reason` always says why the server is in its current status.

    It announces nothing: the writer announces the transition where it owns it (registry.announcements).
    """
    reason = reason[:500]
    for _attempt in range(5):
        with transaction.atomic():
            row = Server.objects.filter(pk=server_id, enabled=True).values("status", "name").first()
            if row is None:
                return None
            current = row["status"]
            if expected is not None and current not in set(expected) and current != status:
                return None
            now = timezone.now()
            changes: dict[str, Any] = {"status": status, "status_reason": reason}
            if protocol_version:
                changes["protocol_version"] = protocol_version
            if error is not None:
                changes["last_error"] = error[:2000]
            if current != status:
                changes["status_changed_at"] = now
            updated = Server.objects.filter(pk=server_id, enabled=True, status=current).update(**changes)
            if updated != 1:
                continue  # someone else moved it meanwhile: read again and decide on what is there now
            if current != status:
                StatusChange.objects.create(
                    server_id=server_id, from_status=current, to_status=status, reason=reason, at=now, source=source
                )
            fresh = Server.objects.filter(pk=server_id).values("last_seen_at", "protocol_version").first() or {}
            return StatusTransition(
                server_id=server_id,
                name=row["name"],
                from_status=current,
                to_status=status,
                reason=reason,
                changed=current != status,
                at=now,
                last_seen_at=fresh.get("last_seen_at"),
                protocol_version=fresh.get("protocol_version") or "",
            )
    logger.warning("status of server %s kept changing under us; gave up writing %s", server_id, status)
    return None


def call_outcomes_record(outcomes: Sequence[CallOutcome], ids_by_name: dict[str, int] | None = None) -> int:
    """Write a batch of call outcomes in one transaction; outcomes of servers deleted meanwhile are dropped.

    Outcomes name servers by name; `ids_by_name` (the supervisor's map, which keeps a renamed server's old name
    until its outcomes are written) resolves them, the database the rest.
    """
    if not outcomes:
        return 0
    known = dict(ids_by_name or {})
    missing = {outcome.server_key for outcome in outcomes} - set(known)
    if missing:
        known.update(dict(Server.objects.filter(name__in=missing).values_list("name", "id")))
    for _attempt in range(3):
        try:
            return _call_records_insert(outcomes, known)
        except IntegrityError:
            # A server was deleted between the check and the insert (another process): check again, drop its rows.
            continue
    logger.warning("dropped %d call outcome(s): their servers kept disappearing", len(outcomes))
    return 0


@transaction.atomic
def _call_records_insert(outcomes: Sequence[CallOutcome], known: dict[str, int]) -> int:
    # Inside the transaction, so a server deleted a moment ago cannot fail the whole batch on its foreign key.
    existing = set(Server.objects.filter(id__in=set(known.values())).values_list("id", flat=True))
    rows = [
        CallRecord(
            server_id=known[outcome.server_key],
            operation=outcome.operation[:64],
            target_name=outcome.target_name[:300],
            started_at=outcome.started_at,
            latency_ms=outcome.latency_ms,
            ok=outcome.ok,
            error_kind=outcome.error_kind or "",
            error_message=outcome.error_message[:2000],
            caller=outcome.caller[:150],
            correlation_id=outcome.correlation_id[:100],
        )
        for outcome in outcomes
        if known.get(outcome.server_key) in existing
    ]
    CallRecord.objects.bulk_create(rows, batch_size=500)
    return len(rows)


def servers_seen_record(seen: dict[str, datetime], ids_by_name: dict[str, int] | None = None) -> None:
    """Move each server's "last seen" forward to the latest successful request (never backwards).

    Hundreds of servers are seen every few seconds, so this is one prepared statement run for every server in one
    transaction: building an ORM expression per server (a CASE of hundreds of branches, resolved and copied) cost
    about 1.7 ms of CPU per server and was a third of the CPU of a health check.
    """
    known = dict(ids_by_name or {})
    missing = set(seen) - set(known)
    if missing:
        known.update(dict(Server.objects.filter(name__in=missing).values_list("name", "id")))
    moments = {known[name]: at for name, at in seen.items() if name in known}
    if not moments:
        return
    quote, adapt = connection.ops.quote_name, connection.ops.adapt_datetimefield_value
    table, column, key = quote(Server._meta.db_table), quote("last_seen_at"), quote("id")
    statement = f"UPDATE {table} SET {column} = %s WHERE {key} = %s AND ({column} IS NULL OR {column} < %s)"
    rows = [(adapt(at), server_id, adapt(at)) for server_id, at in sorted(moments.items())]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(statement, rows)


def call_records_prune(*, older_than: datetime, batch_size: int = 5_000) -> int:
    """Delete call records older than the retention, a batch at a time (short transactions, no long lock)."""
    deleted = 0
    while True:
        ids = list(
            CallRecord.objects.older_than(older_than).order_by("started_at").values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += CallRecord.objects.filter(id__in=ids).delete()[0]
        if len(ids) < batch_size:
            return deleted
