""" "Authorize" (the server page, the add-server form after saving) and `/oauth/callback/`.

Authorize (POST, operators): starts the SDK's authorization code flow with PKCE on the fleet loop
(registry/oauth_flow.py), remembers its `state` in the person's session, and sends the browser to the authorization
server. The callback (GET, the same signed-in person): a state this session did not start is refused; a good one
hands the code to the waiting flow, which exchanges it and stores the grant encrypted; then the server's session is
reconnected at once. Nothing here shows a token or a secret: errors are in words, scrubbed.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from mcp.client.auth.exceptions import OAuthFlowError
from mcp.shared.auth import AuthorizationCodeResult

from fleet.calls import reconnect_now, run_on_fleet
from mcp_client.deadlines import Deadline
from mcp_client.failures import describe_exception
from mcp_client.oauth import AuthorizationNeeded
from registry import oauth_flow
from registry.models import Server
from registry.oauth_store import oauth_settings_for
from registry.permissions import Role, role_of
from registry.validation import outbound_policy
from registry.views import viewer_required

logger = logging.getLogger(__name__)

# The person's session: state -> server name, for the authorizations this browser started.
SESSION_KEY = "oauth_pending"
MAX_PENDING_PER_SESSION = 10


def _why(error: BaseException) -> str:
    if isinstance(error, AuthorizationNeeded):
        return error.why
    if isinstance(error, OAuthFlowError):
        return str(error)
    return describe_exception(error)


@require_POST
@viewer_required
def oauth_authorize(request: HttpRequest, name: str) -> HttpResponse:
    if role_of(request.user) < Role.OPERATOR:
        raise PermissionDenied("Authorizing a server needs the operator role.")
    server = get_object_or_404(Server, name=name)
    back = reverse("registry:server_detail", kwargs={"name": server.name})
    if not server.oauth:
        messages.error(request, f"{server.name} has no OAuth settings: edit it to add them.")
        return redirect(back)
    if server.oauth.get("grant") == "client_credentials":
        messages.info(request, f"{server.name} uses client credentials: no person authorizes it.")
        return redirect(back)
    callback = request.build_absolute_uri(reverse("oauth-callback"))
    try:
        settings = oauth_settings_for(server, callback_url=callback)
        assert settings is not None
        started = run_on_fleet(
            oauth_flow.begin(server=server.name, url=server.url, settings=settings, outbound=outbound_policy()),
            deadline=Deadline.within(oauth_flow.AUTHORIZE_STEP_SECONDS),
            what=f"the authorization of {server.name!r}",
        )
    except Exception as error:  # noqa: BLE001 - any failure (FleetTimedOut, the SDK's flow errors) is told, in words
        messages.error(request, f"Could not start the authorization of {server.name}: {_why(error)}")
        return redirect(back)
    if started is None:
        messages.success(request, f"{server.name} let us in with the grant it has: nothing to authorize.")
        reconnect_now(server.name)
        return redirect(back)
    state, authorization_url = started
    pending = dict(request.session.get(SESSION_KEY) or {})
    pending[state] = server.name
    request.session[SESSION_KEY] = dict(list(pending.items())[-MAX_PENDING_PER_SESSION:])
    # A page that goes on to the authorization server, not a redirect: the CSP's form-action 'self' would stop the
    # browser from following this form's POST to another origin.
    return render(
        request,
        "registry/oauth_redirect.html",
        {"server_name": server.name, "authorization_url": authorization_url},
    )


@require_GET
@viewer_required
def oauth_callback(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")
    pending = dict(request.session.get(SESSION_KEY) or {})
    server_name = pending.pop(state, None) if state else None
    if server_name is None:
        # Not an authorization this browser started: a forged or replayed redirect, or another person's.
        return render(
            request,
            "registry/oauth_callback.html",
            {
                "problem": "This authorization response does not belong to an authorization you started (state "
                "mismatch). Press Authorize on the server's page again."
            },
            status=400,
        )
    request.session[SESSION_KEY] = pending
    back = reverse("registry:server_detail", kwargs={"name": server_name})
    deadline = Deadline.within(oauth_flow.AUTHORIZE_STEP_SECONDS)
    if "error" in request.GET:
        why = f"the authorization server refused: {request.GET.get('error', '')[:100]}"
        run_on_fleet(oauth_flow.refuse(state=state, why=why), deadline=deadline, what="an authorization refusal")
        messages.error(request, f"{server_name} was not authorized: {why}")
        return redirect(back)
    code = request.GET.get("code", "")
    if not code:
        messages.error(request, f"{server_name} was not authorized: the response carried no code.")
        return redirect(back)
    response = AuthorizationCodeResult(code=code, state=state, iss=request.GET.get("iss") or None)
    try:
        run_on_fleet(
            oauth_flow.finish(state=state, response=response), deadline=deadline, what="an authorization's token"
        )
    except Exception as error:  # noqa: BLE001 - any failure (LookupError: no such state; a timeout) is told, in words
        messages.error(request, f"{server_name} was not authorized: {_why(error)}")
        return redirect(back)
    logger.info("MCP server %r authorized by %s", server_name, request.user.get_username())
    reconnect_now(server_name)
    messages.success(request, f"{server_name} is authorized; reconnecting.")
    return redirect(back)
