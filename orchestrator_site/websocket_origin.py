"""Which origins may open a WebSocket: exactly the page's own origin (scheme, host and port), or one listed in
CSRF_TRUSTED_ORIGINS.

Channels' AllowedHostsOriginValidator compares only the host name, so a page on another port or scheme of the same
host (another app on the machine) could open a socket with the user's session cookie.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

Scope = dict[str, Any]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def origin_allowed(scope: Scope) -> bool:
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if not origin or not host:
        return False  # browsers always send both; a socket without them did not come from our pages
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    if origin == f"{scheme}://{host}":
        return True
    return origin in set(settings.CSRF_TRUSTED_ORIGINS)


class SameOriginWebSocketValidator:
    """ASGI middleware: refuses (closes before accept) a WebSocket whose Origin is not allowed."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)
