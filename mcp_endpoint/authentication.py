"""Who may talk to the MCP endpoint: the Origin check (DNS rebinding) and `Authorization: Bearer <API token>`.

The tokens are the REST API's (DRF `Token`, created at `/api/auth/token/` or on the MCP endpoint page); a Bearer
key is looked up exactly as the API's `Token` header is, through `orchestrator_site.async_api` (its per-process
`callers` cache, cleared when a token, a user or a group membership changes): one way to turn a key into a Caller.

Order on every request (the router, mcp_endpoint/asgi.py, applies it to `/mcp/` and `/mcp/servers/<name>/`):
1. `origin_allowed(scope)`: the Host must be one of ALLOWED_HOSTS, and a browser's Origin (when there is one) must
   be the site's own (the Host's origin) or one of CSRF_TRUSTED_ORIGINS (which `serve` extends with the served
   address's other loopback names). A request without Origin is a non-browser client (an agent, an MCP host) and
   passes: a web page cannot send a request without it. Else `refuse_origin(send)`: 403.
2. `caller_from_scope(scope)`: the Bearer token's Caller, or `Unauthenticated` -> `refuse_unauthenticated(send, ...)`:
   401 with `WWW-Authenticate: Bearer realm="mcp-orchestrator"` (plus `error="invalid_token"` when a token was sent
   but is not valid). A valid token whose user has no role (an outsider) -> `refuse_without_role(send)`: 403.
3. The router puts the Caller in `scope["mcp_caller"]` and, for the SDK's session ownership, an `AuthenticatedUser`
   in `scope["user"]` (`sdk_user_for`): a Streamable HTTP session then answers only the token that created it
   (another token, even of the same user, gets the SDK's 404 "Session not found").

The current caller inside an SDK request handler: `current_caller()`. It is a ContextVar that `CallerMiddleware` (an
SDK `ServerMiddleware`; add it to `Server.middleware` of every endpoint server) sets around each request from the
HTTP request the SDK attaches to the request context (`ctx.request.scope["mcp_caller"]`). A plain ContextVar set by
the router would not reach the handlers: a 2025-era session's handlers run in the session's own task, started when
the session was opened, not in the task of the HTTP request that carries the call.

The key itself is never logged, never put in an error, and not kept in the scope: the SDK sees only a digest.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from orchestrator_site.async_api import Caller, caller_for_token
from registry.permissions import Role

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]

REALM = "mcp-orchestrator"
# Where the router leaves the authenticated Caller for the endpoint (and P's passthrough) to read.
CALLER_SCOPE_KEY = "mcp_caller"
# API token keys are 40 hex characters; anything much longer is not one and is not looked up.
_MAX_KEY_LENGTH = 256


class Unauthenticated(Exception):
    """No usable credential. `token_sent`: a token was given but is not valid (the header then says
    `error="invalid_token"`), as opposed to no token at all."""

    def __init__(self, message: str, *, token_sent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.token_sent = token_sent


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def origin_allowed(scope: Scope) -> bool:
    """True when the request may come from where it says it comes from (see the module docstring)."""
    host = _header(scope, b"host")
    if not host:
        return False
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        # A DNS-rebound name (evil.example resolving to 127.0.0.1) arrives with its own Host: refused here.
        return False
    origin = _header(scope, b"origin")
    if origin is None:
        return True  # not a browser: browsers send Origin on every request a page could make to us
    scheme = "https" if scope.get("scheme") == "https" else "http"
    if origin == f"{scheme}://{host}":
        return True
    return origin in set(settings.CSRF_TRUSTED_ORIGINS)


def _bearer_key(scope: Scope) -> str:
    header = _header(scope, b"authorization")
    if header is None or not header.strip():
        raise Unauthenticated("Authentication required: send 'Authorization: Bearer <API token>'.", token_sent=False)
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer":
        raise Unauthenticated(
            "Use the Bearer scheme: 'Authorization: Bearer <API token>'.", token_sent=scheme.lower() == "token"
        )
    if not key or " " in key or len(key) > _MAX_KEY_LENGTH:
        raise Unauthenticated("Invalid token header.", token_sent=True)
    return key


async def caller_from_scope(scope: Scope) -> Caller:
    """The Caller the request's Bearer token belongs to; raises Unauthenticated. A database read only when the
    per-process cache does not know the key (on a worker thread, never on the event loop)."""
    caller = await caller_for_token(_bearer_key(scope))
    if caller is None:
        raise Unauthenticated("Invalid token.", token_sent=True)
    return caller


def token_digest(scope: Scope) -> str:
    """A stable, non-reversible name for the request's token (to tell tokens apart without keeping one)."""
    return hashlib.sha256(_bearer_key(scope).encode()).hexdigest()


def sdk_user_for(caller: Caller, scope: Scope) -> AuthenticatedUser:
    """The SDK's view of the credential: its sessions belong to the (client_id, issuer, subject) that opened them.
    client_id is the user, subject the token's digest, so a session answers only the token that created it."""
    digest = token_digest(scope)
    return AuthenticatedUser(
        AccessToken(token=digest, client_id=f"user-{caller.user_id}", scopes=[caller.role.name.lower()], subject=digest)
    )


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def refuse_unauthenticated(send: Send, problem: Unauthenticated | str) -> None:
    """401 with the WWW-Authenticate challenge (RFC 6750). A plain string counts as a bad token."""
    if isinstance(problem, str):
        problem = Unauthenticated(problem, token_sent=True)
    challenge = f'Bearer realm="{REALM}"'
    body: dict[str, Any] = {"error": "unauthorized", "error_description": problem.message}
    if problem.token_sent:
        challenge += ', error="invalid_token"'
        body["error"] = "invalid_token"
    await _send_json(send, 401, body, [(b"www-authenticate", challenge.encode())])


async def refuse_origin(send: Send, message: str = "This origin may not use the MCP endpoint.") -> None:
    """403 for a request from a foreign origin or to a host name that is not this site's."""
    await _send_json(send, 403, {"error": "forbidden", "error_description": message}, [])


async def refuse_without_role(send: Send) -> None:
    """403 for a valid token whose user has no role (neither viewer, operator nor admin)."""
    await _send_json(
        send,
        403,
        {
            "error": "insufficient_scope",
            "error_description": "You need the viewer role (or higher) to use the MCP endpoint.",
        },
        [(b"www-authenticate", f'Bearer realm="{REALM}", error="insufficient_scope"'.encode())],
    )


def has_any_role(caller: Caller) -> bool:
    return caller.role >= Role.VIEWER


# --- the caller inside SDK handlers -----------------------------------------------------------------------------

_current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("mcp_endpoint_caller", default=None)


class NoCaller(RuntimeError):
    """current_caller() outside a request that came through the router: a programming error, not a client's."""


def current_caller() -> Caller:
    """The authenticated Caller of the MCP request being handled (set by CallerMiddleware)."""
    caller = _current_caller.get()
    if caller is None:
        raise NoCaller("no MCP caller in this context: is CallerMiddleware in the server's middleware?")
    return caller


def caller_of_request(ctx: ServerRequestContext[Any, Any]) -> Caller | None:
    """The Caller the router put in the scope of the HTTP request the SDK attached to this request context."""
    request = ctx.request
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None
    caller = scope.get(CALLER_SCOPE_KEY)
    return caller if isinstance(caller, Caller) else None


class CallerMiddleware:
    """SDK ServerMiddleware: makes `current_caller()` answer inside the handlers of each request."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        caller = caller_of_request(ctx)
        if caller is None:
            return await call_next(ctx)
        token = _current_caller.set(caller)
        try:
            return await call_next(ctx)
        finally:
            _current_caller.reset(token)


def caller_context(caller: Caller) -> contextvars.Token[Caller | None]:
    """Set the current caller directly (for code that serves a request outside the SDK's middleware chain);
    undo with `reset_caller(token)`."""
    return _current_caller.set(caller)


def reset_caller(token: contextvars.Token[Caller | None]) -> None:
    _current_caller.reset(token)
