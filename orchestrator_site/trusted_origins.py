"""The origins trusted for session POSTs (CSRF) and WebSockets besides the page's own: those of the address actually
served, plus any set explicitly (CSRF_TRUSTED_ORIGINS, e.g. the public https origin behind a TLS proxy).

A fixed default (http://localhost:8000) trusted a page on port 8000, which on another port is some other program:
its forms and sockets would ride on our session cookie.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def served_origins(host: str, port: int) -> list[str]:
    """The origins a browser uses to reach `host:port` (plain HTTP, as `serve` listens).

    Loopback (or every address) is also reached by its other loopback names: a page at http://localhost:P and the
    server at 127.0.0.1:P are the same program. Any other host is itself only.
    """
    if host in _WILDCARDS or _is_loopback(host):
        names = ["127.0.0.1", "localhost", "::1"]
        if host not in _WILDCARDS and host not in names:
            names.insert(0, host)  # another loopback address, e.g. 127.0.0.2
    else:
        names = [host]
    return [_origin(name, port) for name in names]


def trust_served_origins(host: str, port: int) -> list[str]:
    """Add the origins of the address being served to CSRF_TRUSTED_ORIGINS (which the WebSocket origin check reads
    too); called by `serve` before the first request. The resulting list."""
    origins = list(dict.fromkeys([*settings.CSRF_TRUSTED_ORIGINS, *served_origins(host, port)]))
    settings.CSRF_TRUSTED_ORIGINS = origins
    return origins
