"""Rules a server definition must satisfy, shared by the API serializer, the import and the admin form."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from registry.models import Transport


def transport_errors(
    *, transport: str, command: str, args: Any, cwd: str, url: str, env: Any, headers: Any
) -> dict[str, str]:
    """Field -> message for every way the transport settings do not fit together. Empty when all is well."""
    errors: dict[str, str] = {}
    if transport == Transport.STDIO:
        if not command.strip():
            errors["command"] = "A stdio server needs the command to run."
        if url:
            errors["url"] = "A stdio server takes no URL; remove it or choose the http or sse transport."
        if headers:
            errors["headers"] = "Headers are sent over HTTP only; a stdio server takes env instead."
    elif transport in (Transport.HTTP, Transport.SSE):
        if not url:
            errors["url"] = f"An {transport} server needs its URL, e.g. http://127.0.0.1:8001/mcp."
        else:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https"):
                errors["url"] = "The URL must start with http:// or https://."
            elif parts.username or parts.password:
                errors["url"] = "Credentials do not belong in the URL (it is shown to viewers); put them in headers."
        if command or args or cwd:
            errors["command"] = f"An {transport} server is reached by URL; command, args and cwd must be empty."
        if env:
            errors["env"] = "env is for stdio child processes; an HTTP server takes headers instead."
    else:
        errors["transport"] = f"Unknown transport {transport!r}: choose stdio, http or sse."
    if not isinstance(args, list) or not all(isinstance(item, str) for item in args):
        errors["args"] = "args must be a list of strings."
    for field, value in (("env", env), ("headers", headers)):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            errors[field] = f"{field} must be an object mapping names to string values."
    return errors
