"""The fleet dashboard: thin views over registry.selectors, readable by viewers and up."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from registry import selectors
from registry.discovery import discover_and_record
from registry.models import Server
from registry.permissions import Role, role_of

NO_ROLE_MESSAGE = (
    "Your account has no role in the orchestrator yet. Ask an admin to add you to the viewers or operators group."
)

View = Callable[..., HttpResponse]


def viewer_required(view: View) -> View:
    """Anonymous users go to the login page; signed-in users without a role get a 403 that says what to ask for."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if role_of(request.user) < Role.VIEWER:
            raise PermissionDenied(NO_ROLE_MESSAGE)
        return view(request, *args, **kwargs)

    return login_required(wrapper)


@viewer_required
def fleet_overview(request: HttpRequest) -> HttpResponse:
    filters = selectors.FleetFilters.from_query(request.GET)
    context = {
        "servers": selectors.fleet_overview_rows(filters),
        "summary": selectors.fleet_summary(),
        "attention": selectors.servers_needing_attention(),
        "status_display": selectors.status_display(),
        "filters": filters,
        "filter_options": selectors.fleet_filter_options(),
    }
    return render(request, "registry/fleet_overview.html", context)


@viewer_required
def server_detail(request: HttpRequest, name: str) -> HttpResponse:
    server = get_object_or_404(Server.objects.for_dashboard(), name=name)
    role = role_of(request.user)
    can_call = role >= Role.OPERATOR
    context = selectors.server_detail_context(server, can_call=can_call, query=request.GET)
    if can_call:
        # Edit / Enable-Disable / Remove, or why this role may not (the API's rules, asked of registry.policies).
        from registry.server_pages import change_refusal

        context["manage"] = {"refusal": change_refusal(role, server)}
    # Discovery progress and the button row (static/js/server_page.js), for every role: viewers see progress too.
    context["section_scripts"] = [*context["section_scripts"], "js/server_page.js"]
    return render(request, "registry/server_detail.html", context)


@require_POST
@viewer_required
def server_discover(request: HttpRequest, name: str) -> HttpResponse:
    """The server page's "Discover now" button (operators): the same discovery the API's discover action runs."""
    if role_of(request.user) < Role.OPERATOR:
        raise PermissionDenied("Discovering a server needs the operator role.")
    server = get_object_or_404(Server, name=name)
    if not server.enabled:
        messages.error(request, f"{server.name} is disabled; enable it before discovering.")
    else:
        outcome = discover_and_record(server=server, caller=request.user.get_username())
        if outcome["ok"]:
            counts = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in outcome["counts"].items())
            news = "capabilities changed" if outcome["changed"] else "nothing changed"
            messages.success(request, f"Discovered {server.name}: {counts} ({news}).")
            for note in outcome["truncated"].values():
                messages.warning(request, f"{server.name}: {note}.")
        else:
            messages.error(request, f"Could not discover {server.name}: {outcome['error']}")
    return redirect("registry:server_detail", name=server.name)
