"""API views served on the event loop: the serving path (tool calls, resource reads, fused queries, balanced
calls) never queues on a shared thread.

Django runs every sync view on one thread (asgiref's thread-sensitive executor), so twenty callers of a sync view
wait for each other even while their MCP calls are in flight, and each pays a database round trip for the token,
the role and the server. An `AsyncAPIView` handler runs on the web server's event loop instead and awaits the
fleet, with the caller answered from a short per-process cache:

- `Authorization: Token <key>`: the token's user and role are kept for `API_CALLER_CACHE_SECONDS` (a revoked token,
  a deactivated user or a changed role take effect within that time in every process; at once in this one, where
  saving or deleting a token, a user or a group membership clears the cache).
- A session (the dashboard's forms): the session and user are loaded as Django's middleware does, with DRF's CSRF
  rule for session-authenticated writes.
- DRF's test client's `force_authenticate` is honoured, as DRF's own views do.

Answers and errors have the same shapes as DRF's (`{"detail": ...}`, `{"field": ["..."]}`, 401 with
`WWW-Authenticate: Token`), and the per-user rate of `DEFAULT_THROTTLE_RATES["user"]` applies per process. The
class is a DRF `APIView` only so that drf-spectacular documents it like every other endpoint: DRF's request
machinery never runs for it.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework import exceptions, status
from rest_framework.authtoken.models import Token
from rest_framework.views import APIView

from orchestrator_site.database_access import with_database
from orchestrator_site.json_limits import LimitedJSONParser
from registry.permissions import Role, role_of
from registry.shared_loads import SharedLoads

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as an API view needs to know."""

    user_id: int
    username: str
    role: Role


class _CallerCache:
    """Token key -> (Caller, expiry). Per process, bounded, cleared on any change that could revoke or demote."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Caller, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Caller | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, key: str, caller: Caller) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()  # a crude bound: the next calls reload their tokens
            self._entries[key] = (caller, time.monotonic() + settings.API_CALLER_CACHE_SECONDS)

    def clear(self, **_: Any) -> None:
        with self._lock:
            self._entries.clear()


callers = _CallerCache()
# Whatever could revoke a token or change a role clears the cache in this process (other processes within
# API_CALLER_CACHE_SECONDS).
for _model in (Token, get_user_model()):
    post_save.connect(callers.clear, sender=_model, dispatch_uid=f"caller-cache-save-{_model.__name__}")
    post_delete.connect(callers.clear, sender=_model, dispatch_uid=f"caller-cache-delete-{_model.__name__}")
m2m_changed.connect(callers.clear, sender=get_user_model().groups.through, dispatch_uid="caller-cache-groups")


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The orchestrator cannot reach its database; try again shortly."


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."


def _caller_from_token(key: str) -> Caller | None:
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return Caller(user_id=token.user.pk, username=token.user.get_username(), role=role_of(token.user))


_token_loads: SharedLoads[str, Caller | None] = SharedLoads()


async def caller_for_token(key: str) -> Caller | None:
    """Who the API token `key` belongs to (None: no such token, or its user is inactive): the REST API's `Token` and
    the MCP endpoint's `Bearer` alike. From the per-process cache; else one database read on the sync thread, shared
    by the requests that arrive together (every cached key expires at once under load)."""
    caller = callers.get(key)
    if caller is not None:
        return caller

    async def load() -> Caller | None:
        loaded = await with_database(_caller_from_token, key)
        if loaded is not None:
            callers.put(key, loaded)
        return loaded

    return await _token_loads.load(key, load)


def _caller_from_user(user: AbstractBaseUser | AnonymousUser | None) -> Caller | None:
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    return Caller(user_id=user.pk, username=user.get_username(), role=role_of(user))


class _CSRFCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    """DRF's rule for session-authenticated requests: unsafe methods need a valid CSRF token."""
    check = _CSRFCheck(lambda _request: None)  # type: ignore[arg-type, return-value]
    check.process_request(request)
    return check.process_view(request, None, (), {})  # type: ignore[arg-type, return-value]


class _UserRate:
    """The per-user rate of DRF's `user` throttle, counted per process without I/O (a fixed window per user)."""

    def __init__(self) -> None:
        self._windows: dict[int, tuple[float, int]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _rate() -> tuple[int, float] | None:
        rate = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get("user")
        if not rate:
            return None
        count, period = rate.split("/")
        return int(count), {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[period[0]]

    def wait_seconds(self, user_id: int) -> float | None:
        """None when this request may go on; else how long until the window opens again."""
        rate = self._rate()
        if rate is None:
            return None
        limit, period = rate
        now = time.monotonic()
        with self._lock:
            start, count = self._windows.get(user_id, (now, 0))
            if now - start >= period:
                start, count = now, 0
            if count >= limit:
                return period - (now - start)
            self._windows[user_id] = (start, count + 1)
            if len(self._windows) > 100_000:
                self._windows.clear()
        return None


_user_rate = _UserRate()


def error_response(error: exceptions.APIException) -> JsonResponse:
    """A DRF exception as DRF's default handler answers it."""
    detail = error.detail
    body = detail if isinstance(detail, dict | list) else {"detail": detail}
    response = JsonResponse(body, status=error.status_code, safe=False)
    if isinstance(error, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response["WWW-Authenticate"] = "Token"
    if isinstance(error, exceptions.Throttled) and error.wait is not None:
        response["Retry-After"] = str(max(1, int(error.wait + 0.999)))
    return response


class AsyncAPIView(APIView):
    """Base of the API views served on the event loop. Subclasses set `required_role` and write `async def post`
    (or get) taking `(request, caller, body, **url_kwargs)` and returning a JsonResponse."""

    required_role: Role = Role.OPERATOR

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Awaitable[JsonResponse]]:  # type: ignore[override]
        handler_view = cls(**initkwargs)

        async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            return await handler_view.serve(request, **kwargs)

        view.cls = cls  # type: ignore[attr-defined]  # what drf-spectacular introspects
        view.view_instance = handler_view  # type: ignore[attr-defined]  # what the API fast lane calls
        view.initkwargs = initkwargs  # type: ignore[attr-defined]
        view.csrf_exempt = True  # type: ignore[attr-defined]  # CSRF is enforced below, for sessions only
        return markcoroutinefunction(view)

    async def serve(self, request: HttpRequest, **kwargs: Any) -> JsonResponse:
        handler = getattr(self, (request.method or "").lower(), None)
        if handler is None or request.method not in self.http_method_names_upper():
            response = error_response(exceptions.MethodNotAllowed(request.method or ""))
            response["Allow"] = ", ".join(self.http_method_names_upper())
            return response
        try:
            caller = await self.authenticate(request)
            if caller.role < self.required_role:
                raise exceptions.PermissionDenied(self.permission_message())
            wait = _user_rate.wait_seconds(caller.user_id)
            if wait is not None:
                raise exceptions.Throttled(wait)
            body = self.parse_body(request)
            return await handler(request, caller, body, **kwargs)
        except exceptions.APIException as error:
            return error_response(error)
        except (OperationalError, InterfaceError) as error:
            # The database cannot be reached now (down, or the connection was ended: `with_database` lets it go,
            # so the next request connects again): unavailable, not an internal error. No traceback: its frames
            # may hold the token's key.
            what = type(error).__name__
            logger.error("%s %s: the database cannot be reached (%s)", request.method, request.path, what)
            return error_response(DatabaseUnavailable())

    def http_method_names_upper(self) -> list[str]:
        return [name.upper() for name in ("get", "post", "put", "patch", "delete") if hasattr(self, name)]

    def permission_message(self) -> str:
        if self.required_role >= Role.ADMIN:
            return "This needs an admin: it can run commands on the orchestrator's machine."
        if self.required_role >= Role.OPERATOR:
            return "This needs the operator role."
        return "You need the viewer role (or higher) to use the orchestrator."

    async def authenticate(self, request: HttpRequest) -> Caller:
        forced = getattr(request, "_force_auth_user", None)  # set only by DRF's test client
        if forced is not None:
            caller = await with_database(_caller_from_user, forced)
            if caller is None:
                raise exceptions.NotAuthenticated()
            return caller
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, key = header.partition(" ")
            if scheme.lower() == "token":
                key = key.strip()
                if not key or " " in key:
                    raise exceptions.AuthenticationFailed("Invalid token header.")
                caller = await caller_for_token(key)
                if caller is None:
                    raise exceptions.AuthenticationFailed("Invalid token.")
                return caller
        user = await request.auser()  # type: ignore[attr-defined]  # Django's AuthenticationMiddleware
        caller = await sync_to_async(_caller_from_user)(user)
        if caller is None:
            raise exceptions.NotAuthenticated()
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            reason = _csrf_failure(request)
            if reason:
                raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")
        return caller

    def parse_body(self, request: HttpRequest) -> Any:
        """The JSON body through the API's one JSON parser (size and depth limits), or None for an empty body."""
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        try:
            raw = request.body
        except RequestDataTooBig as error:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.") from error
        if not raw:
            return {}
        content_type = request.content_type or ""
        if content_type != "application/json":
            raise exceptions.UnsupportedMediaType(content_type or "none")
        encoding = request.encoding or settings.DEFAULT_CHARSET
        return LimitedJSONParser().parse(io.BytesIO(raw), content_type, {"encoding": encoding})


def json_answer(body: Any, code: int = status.HTTP_200_OK) -> JsonResponse:
    return JsonResponse(body, status=code, safe=False)
