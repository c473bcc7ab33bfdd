"""ASGI: token-authenticated requests to the serving path's views go straight to them, past Django's middleware.

Under ASGI each of Django's built-in middleware (all `MiddlewareMixin`) runs its hooks through `sync_to_async`, and
every request gets a thread-sensitive context of its own, i.e. a new thread: measured here, a request that does
nothing costs ~9 ms that way, four times the MCP call it carries. None of that middleware does anything for a
request that authenticates with `Authorization: Token`: no session, no cookie, no CSRF (DRF exempts token
requests too), no message, no redirect. So such a request to an `AsyncAPIView` (the views that are the serving
path: tool calls and resource reads) is handed to that view here, as a Django request built from the scope, and
its answer gets the headers the middleware would have added (security headers, the CSP). The view is the same one
Django would route to (found with Django's own URL resolver): this is a shorter way in, not a second endpoint. Any
other request, and any request with a session, goes through Django as usual.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.http import HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from orchestrator_site.async_api import AsyncAPIView
from orchestrator_site.security_headers import HEADER as CSP_HEADER
from orchestrator_site.security_headers import content_security_policy

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _has_token(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return value[:6].lower() == b"token "
    return False


def _fast_view(scope: Scope) -> tuple[AsyncAPIView, dict[str, Any]] | None:
    if scope["type"] != "http" or not _has_token(scope) or not scope["path"].startswith("/api/"):
        return None
    try:
        match = resolve(scope["path"])
    except Resolver404:
        return None
    view = getattr(match.func, "view_instance", None)
    if not isinstance(view, AsyncAPIView):
        return None
    return view, match.kwargs


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None when it is over `limit` (what is left of it is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _secure(response: HttpResponse, request: ASGIRequest) -> HttpResponse:
    """The headers Django's SecurityMiddleware, XFrameOptionsMiddleware and our CSP middleware add."""
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if settings.SECURE_REFERRER_POLICY:
        response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        response.headers.setdefault("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY)
    response.headers.setdefault("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY"))
    response.headers.setdefault(CSP_HEADER, content_security_policy(request))
    return response


class ApiFastLane:
    """Wraps the HTTP application (Django's)."""

    def __init__(self, application: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.application = application
        self._responder = ASGIHandler()  # only for its send_response (chunking, cookies, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _fast_view(scope) if scope["type"] == "http" else None
        if found is None:
            await self.application(scope, receive, send)
            return
        view, kwargs = found
        try:
            body = await _read_body(receive, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        except ConnectionAbortedError:
            return
        request = ASGIRequest(scope, io.BytesIO(body or b""))
        try:
            request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware would check it
        except DisallowedHost:
            response: HttpResponse = JsonResponse({"detail": "Bad Request: this host is not served."}, status=400)
        else:
            if body is None:
                limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
                response = JsonResponse({"detail": f"The request body is larger than {limit} bytes."}, status=413)
            else:
                response = await view.serve(request, **kwargs)
        await self._responder.send_response(_secure(response, request), send)
