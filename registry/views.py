"""The fleet dashboard: thin views over registry.selectors, readable by viewers and up."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from registry import selectors
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
        "filters": filters,
        "filter_options": selectors.fleet_filter_options(),
    }
    return render(request, "registry/fleet_overview.html", context)


@viewer_required
def server_detail(request: HttpRequest, name: str) -> HttpResponse:
    server = get_object_or_404(Server.objects.for_dashboard(), name=name)
    return render(request, "registry/server_detail.html", selectors.server_detail_context(server))
