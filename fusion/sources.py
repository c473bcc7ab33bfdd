"""Which servers a query asks, in which order, and what the registry knows of each.

What planning reads (the candidate servers of a selection with their status, priority, timeouts and tool schemas, and
each source's trust) is kept per process for at most API_SERVER_CACHE_SECONDS, so a fused query makes no database
round trip to plan. Any change to a Server, its tags, a CapabilitySnapshot or a SourceTrust made in this process
clears it at once (signals, and the registry's announcements for status writes, which are queryset updates); the
trust this process learns is written into it; what other processes change is seen within the bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from fusion.models import SourceTrust
from fusion.quality import decayed_trust
from fusion.query import FusionQuery, QueryError
from fusion.tool_safety import OPT_IN_FIELD, state_changing_servers
from registry import announcements
from registry.announcements import StatusTransition
from registry.models import CapabilityKind, CapabilitySnapshot, Server, Tag
from registry.selectors import tool_schemas_for
from registry.tool_arguments import argument_errors

# Healthy first: a priority strategy takes the first valid answer, and a reader scans the table from the top.
STATUS_ORDER = ["online", "degraded", "unknown", "pending", "maintenance", "unhealthy", "offline"]
MAX_CACHED = 10_000


@dataclass(frozen=True)
class SourcePlan:
    server: str
    status: str
    priority: int
    trust: float
    output_schema: Mapping[str, Any] | None
    request_timeout_seconds: float
    server_id: int


@dataclass(frozen=True)
class _Candidate:
    """What planning needs of one server for one selection (tool schemas: of the selection's tool)."""

    pk: int
    name: str
    status: str
    priority: int
    request_timeout_seconds: float
    offers: bool
    input_schema: Mapping[str, Any] | None
    output_schema: Mapping[str, Any] | None
    discovered: bool
    state_changing: str = ""  # why the selection's tool changes state on this server; "" when it is not declared to


Selection = tuple[tuple[str, ...], str, str, str, str]
TrustKey = tuple[int, str]
StoredTrust = tuple[float, datetime, int] | None  # (score, updated_at, observations); None: no row yet, the prior


def _selection_of(query: FusionQuery) -> Selection:
    return (query.servers, query.tag, query.server_type, query.tool, query.resource)


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


def _load_candidates(query: FusionQuery) -> tuple[_Candidate, ...]:
    """The selection's servers, healthy first, from the database; QueryError for unknown or disabled servers or none."""
    servers = sorted(_candidates(query), key=_order)
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
    state_changing = state_changing_servers(servers, query.tool) if query.tool else {}
    return tuple(
        _Candidate(
            pk=server.pk,
            name=server.name,
            status=server.status,
            priority=server.priority,
            request_timeout_seconds=server.request_timeout_seconds,
            offers=schemas[server.pk][0] if query.tool else False,
            input_schema=schemas[server.pk][1] if query.tool else None,
            output_schema=schemas[server.pk][2] if query.tool else None,
            discovered=server.pk in discovered,
            state_changing=state_changing.get(server.pk, ""),
        )
        for server in servers
    )


def _load_trust(server_ids: Iterable[int], subject: str) -> dict[int, StoredTrust]:
    ids = list(server_ids)
    found: dict[int, StoredTrust] = dict.fromkeys(ids)
    rows = SourceTrust.objects.filter(server_id__in=ids, subject=subject).order_by()  # (ordering joins the servers)
    for server_id, score, updated_at, observations in rows.values_list(
        "server_id", "score", "updated_at", "observations"
    ):
        found[server_id] = (score, updated_at, observations)
    return found


class _PlanningCache:
    """Selections and trust, each entry kept until its expiry. A change while something was loaded may not be in
    what was read: that load is used for its own query and kept for none (the generation moved)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._selections: dict[Selection, tuple[tuple[_Candidate, ...], float]] = {}
        self._trust: dict[TrustKey, tuple[StoredTrust, float]] = {}

    @property
    def generation(self) -> int:
        return self._generation

    def candidates(self, selection: Selection) -> tuple[_Candidate, ...] | None:
        entry = self._selections.get(selection)
        return entry[0] if entry is not None and entry[1] > time.monotonic() else None

    def trust(self, keys: Iterable[TrustKey]) -> dict[TrustKey, StoredTrust] | None:
        """Every key's trust, or None when one of them is not (or no longer) kept."""
        now = time.monotonic()
        found: dict[TrustKey, StoredTrust] = {}
        for key in keys:
            entry = self._trust.get(key)
            if entry is None or entry[1] <= now:
                return None
            found[key] = entry[0]
        return found

    def keep_candidates(self, selection: Selection, candidates: tuple[_Candidate, ...], generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                if len(self._selections) >= MAX_CACHED:
                    self._selections.clear()
                self._selections[selection] = (candidates, time.monotonic() + settings.API_SERVER_CACHE_SECONDS)

    def keep_trust(self, found: Mapping[TrustKey, StoredTrust], generation: int, *, learned: bool = False) -> None:
        """`learned`: written by runs of this process, which may come back out of order; a row's observation count
        says which write is the later one."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._trust) + len(found) > MAX_CACHED:
                self._trust.clear()
            expires = time.monotonic() + settings.API_SERVER_CACHE_SECONDS
            for key, value in found.items():
                kept = self._trust.get(key)
                if learned and value and kept and kept[0] and kept[0][2] > value[2]:
                    continue
                self._trust[key] = (value, expires)

    def forget_trust(self, keys: Iterable[TrustKey]) -> None:
        with self._lock:
            for key in keys:
                self._trust.pop(key, None)

    def clear(self, **_: Any) -> None:
        with self._lock:
            self._generation += 1
            self._selections.clear()
            self._trust.clear()

    def clear_now_and_on_commit(self, **_: Any) -> None:
        """At once, and again when the change commits: a reader that loaded between the two saw the old rows."""
        self.clear()
        transaction.on_commit(self.clear)


planning_cache = _PlanningCache()
for _model in (Server, CapabilitySnapshot, SourceTrust, Tag):
    post_save.connect(
        planning_cache.clear_now_and_on_commit, sender=_model, dispatch_uid=f"fusion-planning-save-{_model.__name__}"
    )
    post_delete.connect(
        planning_cache.clear_now_and_on_commit, sender=_model, dispatch_uid=f"fusion-planning-delete-{_model.__name__}"
    )
m2m_changed.connect(
    planning_cache.clear_now_and_on_commit, sender=Server.tags.through, dispatch_uid="fusion-planning-server-tags"
)


class _RegistryChanges:
    """Status writes are queryset updates (no signal): the registry announces them once committed."""

    def status_changed(self, transition: StatusTransition) -> None:
        if transition.changed:
            planning_cache.clear()

    def servers_seen(self, seen: Mapping[str, datetime]) -> None:
        return None

    def registry_changed(self) -> None:
        planning_cache.clear()


announcements.connect(_RegistryChanges())


def _plans(
    query: FusionQuery, candidates: tuple[_Candidate, ...], trust: Mapping[int, StoredTrust], now: datetime
) -> list[SourcePlan]:
    """What the registry knows, as plans; QueryError (400) for a tool the named servers lack, bad arguments, or a
    tool that changes state without the query's opt-in."""
    if query.tool and not query.allow_state_changing:
        reasons = [candidate.state_changing for candidate in candidates if candidate.state_changing]
        if reasons:
            raise QueryError(
                {
                    "tool": [
                        f"{query.tool!r} changes state ({'; '.join(reasons[:3])}): asking every source would change "
                        f"it on each. Send {OPT_IN_FIELD}: true to fan it out anyway."
                    ]
                }
            )
    plans: list[SourcePlan] = []
    lacking: list[str] = []
    for candidate in candidates:
        output_schema = None
        if query.tool:
            output_schema = candidate.output_schema
            if query.servers and not candidate.offers and candidate.discovered:
                lacking.append(candidate.name)  # discovered, and the tool is not among what it offers
                continue
            errors = argument_errors(candidate.input_schema, dict(query.arguments)) if candidate.offers else {}
            if errors:
                named = {name if name == "arguments" else f"arguments.{name}": m for name, m in errors.items()}
                raise QueryError(named)
        stored = trust.get(candidate.pk)
        plans.append(
            SourcePlan(
                server=candidate.name,
                status=candidate.status,
                priority=candidate.priority,
                trust=decayed_trust(stored[0], stored[1], now) if stored else decayed_trust(0, None, now),
                output_schema=output_schema,
                request_timeout_seconds=candidate.request_timeout_seconds,
                server_id=candidate.pk,
            )
        )
    if lacking:
        raise QueryError({"servers": [f"Does not offer tool {query.tool!r}: {', '.join(lacking)}."]})
    return plans


def cached_plan(query: FusionQuery, now: datetime) -> list[SourcePlan] | None:
    """The plans from what this process keeps (no database: callable on an event loop), or None when something is
    not kept; QueryError as plan_sources."""
    candidates = planning_cache.candidates(_selection_of(query))
    if candidates is None:
        return None
    trust = planning_cache.trust((candidate.pk, query.subject) for candidate in candidates)
    if trust is None:
        return None
    return _plans(query, candidates, {pk: stored for (pk, _), stored in trust.items()}, now)


def plan_sources(query: FusionQuery, now: datetime) -> list[SourcePlan]:
    """The sources, healthy first; QueryError (400) for unknown servers, a tool they lack, or bad arguments."""
    generation = planning_cache.generation
    selection = _selection_of(query)
    candidates = planning_cache.candidates(selection)
    if candidates is None:
        candidates = _load_candidates(query)
        planning_cache.keep_candidates(selection, candidates, generation)
    keys = [(candidate.pk, query.subject) for candidate in candidates]
    kept = planning_cache.trust(keys)
    if kept is None:
        loaded = _load_trust((candidate.pk for candidate in candidates), query.subject)
        kept = {(pk, query.subject): stored for pk, stored in loaded.items()}
        planning_cache.keep_trust(kept, generation)
    return _plans(query, candidates, {pk: stored for (pk, _), stored in kept.items()}, now)


def trust_learned(subject: str, rows: Iterable[SourceTrust], generation: int) -> None:
    """Trust this process wrote: kept for the next plans once committed (until then, and if it rolls back, read)."""
    learned = {(row.server_id, subject): (row.score, row.updated_at, row.observations) for row in rows}
    if not learned:
        return
    planning_cache.forget_trust(learned)
    transaction.on_commit(lambda: planning_cache.keep_trust(learned, generation, learned=True))
