from __future__ import annotations

app_name = "mcp_endpoint"

# The dashboard's "MCP endpoint" page lives here.
urlpatterns: list = []
