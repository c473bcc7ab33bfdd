"""The health pages: the fleet at a glance, and one server's charts."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from registry.models import Server
from registry.permissions import Role, role_of
from registry.views import viewer_required


@viewer_required
def fleet_health_page(request: HttpRequest) -> HttpResponse:
    return render(request, "health/fleet_health.html", {"can_acknowledge": role_of(request.user) >= Role.OPERATOR})


@viewer_required
def server_health_page(request: HttpRequest, name: str) -> HttpResponse:
    server = get_object_or_404(Server, name=name)
    return render(request, "health/server_health.html", {"server": server})
