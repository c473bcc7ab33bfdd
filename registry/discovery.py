"""Discovering a server on request (the API's discover action, the server page's button, the admin action) and
keeping what was found.

The status of a server is the supervisor's to decide; this records capabilities and reports the outcome to the
person who asked, and a failure is an answer for them, not a status.
"""

from __future__ import annotations

from typing import Any

from fleet import application
from fleet import calls as fleet_calls
from mcp_client import ConnectionLayerError, Deadline, DiscoveredCapabilities
from registry.models import Server
from registry.services import capabilities_record


def capability_counts(discovered: DiscoveredCapabilities) -> dict[str, int]:
    return {
        "tools": len(discovered.tools),
        "resources": len(discovered.resources),
        "resource_templates": len(discovered.resource_templates),
        "prompts": len(discovered.prompts),
    }


def discover_and_record(*, server: Server, caller: str = "") -> dict[str, Any]:
    """Discover now (a server waiting to reconnect is tried again at once) and record what it offers.

    Returns {"ok": True, "changed", "snapshot_id", "protocol_version", "counts", "truncated"} or
    {"ok": False, "error"}.
    """
    try:
        answer = fleet_calls.discover_sync(server, caller=caller)
    except ConnectionLayerError as error:
        return {"ok": False, "error": str(error)}
    recorded = capabilities_record(server=server.pk, discovered=answer.result)
    if recorded is None:
        return {"ok": False, "error": f"{server.name} was deleted during the discovery"}
    return {
        "ok": True,
        "changed": recorded.changed,
        "snapshot_id": recorded.snapshot.pk,
        "protocol_version": answer.result.protocol_version,
        "counts": capability_counts(answer.result),
        # What the limits left out, list by list (absent lists were kept whole).
        "truncated": {listing: report.message for listing, report in answer.result.truncation.items()},
    }


def first_discovery(*, server: Server, caller: str = "") -> dict[str, Any]:
    """The discovery of a server that was just registered or changed.

    Where the fleet is live, the supervisor discovers every new session exactly once: wait for that one instead of
    discovering a second time. Elsewhere (a one-off command) discover here.
    """
    running = application.running()
    supervisor = running.supervisor if running is not None else None
    if supervisor is None:
        return discover_and_record(server=server, caller=caller)
    from django.conf import settings

    budget = settings.MCP_CONNECT_TIMEOUT_SECONDS + server.request_timeout_seconds
    supervisor.request_reconcile()
    return fleet_calls.run_on_fleet(
        supervisor.discovery_of(server.name, budget),
        deadline=Deadline.within(budget),
        what=f"the first discovery of {server.name!r}",
    )
