"""What `/mcp/` offers, from the enabled servers, each with the lists of its latest discovery (the latest
CapabilitySnapshot), as the wire-format dicts the server sent:
- `offered_servers()`: those that can answer now (health's status online or degraded): their own tools, resources
  and prompts (`<server>__<tool>`, ...) are listed only while they can answer;
- `enabled_servers()`: every enabled server, whatever its status: the virtual tools (fused__, balanced__,
  coordinator__) are built from these, so they do not vanish (nor the tool list flap) when one replica goes down,
  exactly when failover matters; fusion and the balancer leave down servers out of a run and report them.

Both come from one load, in a per-process cache: loaded on the sync thread (never an ORM call on the event loop:
`orchestrator_site.database_access.with_database`) and kept for API_SERVER_CACHE_SECONDS at most. It is cleared, as
the serving path's caches are (registry/api_calls.py `servers`, fusion/sources.py `planning_cache`), in this process:
- when the registry announces a status change or a change to the servers (registry.announcements: status writes
  are queryset updates and send no signal);
- when a Server or a CapabilitySnapshot row is saved or deleted (a new discovery, an edit), at once and again when
  the transaction commits (a reader that loaded between the two saw the old rows).
A change in another process (`serve --web` beside a `fleetworker`) is seen when the entry expires.

`watch_changes(callback)` tells a listener (the aggregate's list_changed notifier) that the catalogue may have
changed. The callback is called on whichever thread cleared the cache (a request thread, the fleet loop, a database
worker): it must only hand the news over (e.g. `loop.call_soon_threadsafe`), and the listener then reads the
catalogue again and compares.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.db.models.signals import post_delete, post_save

from orchestrator_site.database_access import with_database
from registry import announcements
from registry.announcements import StatusTransition
from registry.models import CapabilitySnapshot, Server, ServerStatus
from registry.shared_loads import SharedLoads

logger = logging.getLogger(__name__)

# The statuses in which a server is offered: it answers (degraded: slowly or partly, still worth asking).
ANSWERING_STATUSES = (ServerStatus.ONLINE, ServerStatus.DEGRADED)


@dataclass(frozen=True)
class OfferedServer:
    name: str
    server_type: str
    status: str  # health's status (online, degraded; any status in enabled_servers())
    tools: tuple[dict[str, Any], ...]  # wire-format dicts from the latest CapabilitySnapshot
    resources: tuple[dict[str, Any], ...]
    resource_templates: tuple[dict[str, Any], ...]
    prompts: tuple[dict[str, Any], ...]
    # Which discovery the lists come from ("" before the first one): tells a changed catalogue from an unchanged one.
    content_hash: str = field(default="", compare=True)


def _dicts(items: Any) -> tuple[dict[str, Any], ...]:
    return tuple(item for item in items or () if isinstance(item, Mapping))


@dataclass(frozen=True, eq=False)
class Catalogue:
    """One load: every enabled server, and those of them that can answer now. The same object until something
    changes, so a caller may compare by identity to know whether to rebuild what it derives from it."""

    enabled: tuple[OfferedServer, ...]
    offered: tuple[OfferedServer, ...]


def _load() -> Catalogue:
    latest = CapabilitySnapshot.objects.filter(server=OuterRef("pk")).order_by("-discovered_at", "-id").values("id")
    rows = list(
        Server.objects.enabled()
        .annotate(latest_snapshot_id=Subquery(latest[:1]))
        .order_by("name")
        .values("name", "server_type", "status", "latest_snapshot_id")
    )
    snapshot_ids = [row["latest_snapshot_id"] for row in rows if row["latest_snapshot_id"] is not None]
    snapshots = {
        snapshot.pk: snapshot
        for snapshot in CapabilitySnapshot.objects.filter(pk__in=snapshot_ids).only(
            "id", "tools", "resources", "resource_templates", "prompts", "content_hash"
        )
    }
    enabled = []
    for row in rows:
        snapshot = snapshots.get(row["latest_snapshot_id"])
        enabled.append(
            OfferedServer(
                name=row["name"],
                server_type=row["server_type"],
                status=str(row["status"]),
                tools=_dicts(snapshot.tools) if snapshot else (),
                resources=_dicts(snapshot.resources) if snapshot else (),
                resource_templates=_dicts(snapshot.resource_templates) if snapshot else (),
                prompts=_dicts(snapshot.prompts) if snapshot else (),
                content_hash=snapshot.content_hash if snapshot else "",
            )
        )
    answering = {str(status) for status in ANSWERING_STATUSES}
    return Catalogue(enabled=tuple(enabled), offered=tuple(server for server in enabled if server.status in answering))


class _CatalogueCache:
    """The whole catalogue, one entry, until it expires or something clears it. A change while it was loaded may
    not be in what was read: that load answers its own caller and is kept for no one (the generation moved)."""

    def __init__(self) -> None:
        self._entry: tuple[Catalogue, float] | None = None
        self._generation = 0
        self._lock = threading.Lock()
        self._watchers: tuple[Callable[[], None], ...] = ()
        self._loads: SharedLoads[str, Catalogue] = SharedLoads()

    async def get(self) -> Catalogue:
        entry = self._entry
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        return await self._loads.load("catalogue", self._load)

    async def _load(self) -> Catalogue:
        generation = self._generation
        loaded = await with_database(_load)
        with self._lock:
            if generation == self._generation:
                self._entry = (loaded, time.monotonic() + settings.API_SERVER_CACHE_SECONDS)
        return loaded

    def clear(self, **_: Any) -> None:
        with self._lock:
            self._generation += 1
            self._entry = None
        for watcher in self._watchers:
            try:
                watcher()
            except Exception:
                logger.exception("MCP endpoint: a catalogue watcher failed")

    def clear_now_and_on_commit(self, **_: Any) -> None:
        self.clear()
        transaction.on_commit(self.clear)

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._watchers = (*self._watchers, callback)

        def unwatch() -> None:
            with self._lock:
                self._watchers = tuple(known for known in self._watchers if known is not callback)

        return unwatch


_catalogue = _CatalogueCache()
for _model in (Server, CapabilitySnapshot):
    post_save.connect(
        _catalogue.clear_now_and_on_commit, sender=_model, dispatch_uid=f"mcp-catalogue-save-{_model.__name__}"
    )
    post_delete.connect(
        _catalogue.clear_now_and_on_commit, sender=_model, dispatch_uid=f"mcp-catalogue-delete-{_model.__name__}"
    )


class _RegistryChanges:
    """Status writes send no signal: the registry announces them once committed."""

    def status_changed(self, transition: StatusTransition) -> None:
        if transition.changed:
            _catalogue.clear()

    def servers_seen(self, seen: Mapping[str, datetime]) -> None:
        return None

    def registry_changed(self) -> None:
        _catalogue.clear()


announcements.connect(_RegistryChanges())


async def offered_servers() -> list[OfferedServer]:
    """The enabled servers that can answer now, by name, with their latest discovered lists (per-process cache)."""
    return list((await _catalogue.get()).offered)


async def enabled_servers() -> list[OfferedServer]:
    """Every enabled server, whatever its status, by name, with its latest discovered lists (the same cache and
    load as offered_servers())."""
    return list((await _catalogue.get()).enabled)


async def current_catalogue() -> Catalogue:
    """Both lists as the cache holds them: the same object until something changes."""
    return await _catalogue.get()


def watch_changes(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback()` (from any thread, it must not block) whenever the catalogue may have changed; returns the
    function that stops it."""
    return _catalogue.watch(callback)


def forget_cached() -> None:
    """Drop what this process keeps (tests that write rows without the services)."""
    _catalogue.clear()
