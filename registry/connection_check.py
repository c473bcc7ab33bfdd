"""The server form's "test connection": the MCP handshake and listing against a definition as typed, unsaved.

The definition has passed the same validation as a create (`ServerDefinitionSerializer`, the outbound address
policy among its rules) and the same role rules (registry.policies) before it gets here. The connection is
one-shot (`mcp_client.discover_once` through the fleet's bridge, `fleet.calls.discover_definition_sync`), bounded
by `CONNECTION_CHECK_MAX_SECONDS` whatever the definition's timeouts say, and its error is told in words with the
definition's secrets scrubbed out: a person reads it, and the header they typed must not come back in it.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from fleet import calls as fleet_calls
from mcp_client import ConnectionLayerError, Deadline, ServerTarget
from mcp_client.capabilities import DiscoveredCapabilities
from mcp_client.failures import describe_exception
from mcp_client.redaction import Redactor
from registry.oauth_store import oauth_settings_for_check

# One step's limit: a form waits for this, so a server that never answers must not hold it for the definition's
# own (up to 600 s) request timeout.
CONNECTION_CHECK_STEP_SECONDS = 10.0
# The connect and the listing together, plus a little for the hand-over.
CONNECTION_CHECK_MAX_SECONDS = 2 * CONNECTION_CHECK_STEP_SECONDS + 1.0
# Tool names shown back, so the person sees it is the server they meant (a server may list thousands).
TOOL_NAMES_SHOWN = 20
CHECK_KEY = "connection-test"


def _target(definition: dict[str, Any]) -> ServerTarget:
    return ServerTarget(
        key=definition.get("name") or CHECK_KEY,
        transport=definition["transport"],
        command=definition.get("command", ""),
        args=tuple(definition.get("args", ())),
        env=definition.get("env") or {},
        cwd=definition.get("cwd") or None,
        url=definition.get("url", ""),
        headers=definition.get("headers") or {},
        request_timeout=min(float(definition.get("request_timeout_seconds", 10.0)), CONNECTION_CHECK_STEP_SECONDS),
        connect_timeout=min(settings.MCP_CONNECT_TIMEOUT_SECONDS, CONNECTION_CHECK_STEP_SECONDS),
        capability_limits=fleet_calls.capability_limits(),
        inbound_limits=fleet_calls.inbound_limits(),
        oauth=oauth_settings_for_check(definition),
    )


def _found(discovered: DiscoveredCapabilities, elapsed_ms: float) -> dict[str, Any]:
    info = discovered.server_info or {}
    return {
        "ok": True,
        "protocol_version": discovered.protocol_version,
        "server_name": str(info.get("name") or ""),
        "server_version": str(info.get("version") or ""),
        "counts": {
            "tools": len(discovered.tools),
            "resources": len(discovered.resources),
            "resource_templates": len(discovered.resource_templates),
            "prompts": len(discovered.prompts),
        },
        "tool_names": [str(tool.get("name", "")) for tool in discovered.tools[:TOOL_NAMES_SHOWN]],
        "truncated": {listing: report.message for listing, report in discovered.truncation.items()},
        "elapsed_ms": round(elapsed_ms, 1),
    }


def check_connection(*, definition: dict[str, Any]) -> dict[str, Any]:
    """Connect to the validated `definition`, list what it offers, disconnect.

    {"ok": True, "protocol_version", "server_name", "server_version", "counts", "tool_names", "truncated",
    "elapsed_ms"}, or {"ok": False, "error", "elapsed_ms"}: a failure is this answer, not an exception."""
    started = time.monotonic()
    try:
        target = _target(definition)
    except ValueError as error:
        # Validation passed, so this is rare; still said in words, and the secrets it may quote scrubbed.
        secrets = [*(definition.get("headers") or {}).values(), *(definition.get("env") or {}).values()]
        return {"ok": False, "error": Redactor(secrets)(str(error)), "elapsed_ms": 0.0}
    redact = target.redactor()
    try:
        discovered = fleet_calls.discover_definition_sync(
            target, deadline=Deadline.within(CONNECTION_CHECK_MAX_SECONDS)
        )
    except TimeoutError:
        # anyio's limit on the listing, or the bridge's (FleetTimedOut is a TimeoutError too).
        error = f"no answer within {CONNECTION_CHECK_STEP_SECONDS:g} s"
        return {"ok": False, "error": error, "elapsed_ms": _since(started)}
    except Exception as failure:  # noqa: BLE001 - every failure is an answer for the person testing
        # The layer's errors are already one line for a person; anything else is described the same way.
        text = str(failure) if isinstance(failure, ConnectionLayerError) else describe_exception(failure)
        text = text.replace(f"MCP server {target.key!r}: ", "")
        return {"ok": False, "error": redact(text), "elapsed_ms": _since(started)}
    return _found(discovered, _since(started))


def _since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
