from __future__ import annotations

# The REST API of the MCP endpoint page (the caller's own token) lives here.
urlpatterns: list = []
