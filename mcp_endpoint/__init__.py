"""The orchestrator as an MCP server: `/mcp/` (the whole fleet, namespaced, with fused, balanced and coordinator
tools) and `/mcp/servers/<name>/` (one server passed through), for agents and MCP hosts, behind API tokens."""
