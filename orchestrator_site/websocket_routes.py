"""WebSocket routes of every app, wired in one place. The pipeline's `/ws/events/` is the one live socket: the
dashboard's fleet status, quotes, spreads and every later component's events travel through it."""

from __future__ import annotations

from pipeline.websocket_routes import websocket_urlpatterns as pipeline_websocket_urlpatterns

websocket_urlpatterns = [*pipeline_websocket_urlpatterns]
