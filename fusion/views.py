"""The fusion page: ask a question of several servers, see the fused value, each source and the explanation."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from fusion.strategies import all_strategies
from registry.models import Capability, CapabilityKind
from registry.permissions import Role, role_of
from registry.views import viewer_required


def tools_offered() -> dict[str, list[str]]:
    """Tool -> the enabled servers offering it (from their latest discovery), tools offered by several first."""
    offered: dict[str, list[str]] = {}
    rows = Capability.objects.filter(kind=CapabilityKind.TOOL, server__enabled=True).values_list("name", "server__name")
    for tool, server in rows.order_by("name", "server__name"):
        offered.setdefault(tool, []).append(server)
    return dict(sorted(offered.items(), key=lambda item: (-len(item[1]), item[0])))


@viewer_required
def fusion_page(request: HttpRequest) -> HttpResponse:
    context = {
        "can_ask": role_of(request.user) >= Role.OPERATOR,
        "tools": tools_offered(),
        "strategies": [strategy.describe() for strategy in all_strategies()],
    }
    return render(request, "fusion/fusion.html", context)
