"""The alerting page (/alerting/): silences, maintenance windows, alert rules and notification channels.

The page only lays out forms and lists; its script reads and writes through the REST API (health/alerts_api.py,
health/api.py's maintenance windows), so the API's validation and role rules are the page's too. Forms are shown
only to the roles the API lets write (operators; channels: admins); the API refuses the others anyway.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from health.models import ChannelKind, Recurrence, RuleKind, Severity
from registry.models import Server, Tag
from registry.permissions import Role, role_of
from registry.views import viewer_required


def scope_choices() -> dict[str, list[str]]:
    """What a rule or a window can be scoped to: server names, the server types in use, the tags."""
    return {
        "servers": list(Server.objects.order_by("name").values_list("name", flat=True)),
        "server_types": list(Server.objects.order_by("server_type").values_list("server_type", flat=True).distinct()),
        "tags": list(Tag.objects.order_by("name").values_list("name", flat=True)),
    }


@viewer_required
def alerting_page(request: HttpRequest) -> HttpResponse:
    role = role_of(request.user)
    context: dict[str, Any] = {
        **scope_choices(),
        "can_operate": role >= Role.OPERATOR,
        "can_admin": role >= Role.ADMIN,
        "rule_kinds": RuleKind.choices,
        "severities": Severity.choices,
        "recurrences": Recurrence.choices,
        "channel_kinds": ChannelKind.choices,
        "callables": sorted(settings.HEALTH_ALERT_CALLABLES),
    }
    return render(request, "health/alerting.html", context)
