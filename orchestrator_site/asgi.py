"""ASGI entry point: HTTP goes to Django (the serving path's token calls by a shorter way in), WebSockets to Channels
behind origin validation and session auth."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")

# Django must be set up before the routing modules import models.
django_asgi_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from mcp_endpoint.asgi import McpEndpointRouter  # noqa: E402
from orchestrator_site.api_fast_lane import ApiFastLane  # noqa: E402
from orchestrator_site.websocket_origin import SameOriginWebSocketValidator  # noqa: E402
from orchestrator_site.websocket_routes import websocket_urlpatterns  # noqa: E402

# /mcp/ and /mcp/servers/<name>/ (the orchestrator as an MCP server) go to the MCP endpoint; the rest as before.
application = McpEndpointRouter(
    ProtocolTypeRouter(
        {
            # Token-authenticated calls of the serving path skip Django's middleware (see api_fast_lane.py).
            "http": ApiFastLane(django_asgi_application),
            "websocket": SameOriginWebSocketValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
