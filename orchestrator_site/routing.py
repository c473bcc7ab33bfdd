"""WebSocket routes of every app, wired in one place."""

from __future__ import annotations

from registry.routing import websocket_urlpatterns as registry_websocket_urlpatterns

websocket_urlpatterns = [*registry_websocket_urlpatterns]
