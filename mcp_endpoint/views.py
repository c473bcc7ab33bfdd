"""The dashboard's "MCP endpoint" page (/mcp-endpoint/): where agents and MCP hosts connect, with what token, and
configurations ready to paste.

The page only renders; its script (static/js/mcp_endpoint.js) makes and revokes the caller's token through
`/api/auth/my-token/` (mcp_endpoint/token_api.py) and fills the configurations in. Addresses are built from the
request, so they name the host and scheme the browser reached.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from mcp_endpoint.tokens import token_of
from registry.models import Server
from registry.permissions import Role, role_of
from registry.views import viewer_required

AGGREGATE_PATH = "/mcp/"
PASSTHROUGH_PREFIX = "/mcp/servers/"


@viewer_required
def endpoint_page(request: HttpRequest) -> HttpResponse:
    role = role_of(request.user)
    token = token_of(request.user)
    context: dict[str, Any] = {
        "aggregate_url": request.build_absolute_uri(AGGREGATE_PATH),
        # The script appends "<name>/": server names are slugs, safe in a path as they are.
        "passthrough_base": request.build_absolute_uri(PASSTHROUGH_PREFIX),
        "servers": list(Server.objects.enabled().order_by("name").values("name", "status")),
        "role": role.name.lower(),
        "can_call": role >= Role.OPERATOR,
        "token": token,
        "token_api": reverse("my-token"),
    }
    return render(request, "mcp_endpoint/endpoint.html", context)
