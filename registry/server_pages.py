"""The dashboard's pages for managing servers: add, edit, import and export.

They only render: every change is made by the page's script through the REST API (`registry/api.py`), so a
definition takes one validation path and one set of role rules (registry.policies) whether it comes from the
dashboard, the API, an import or the admin. What the pages decide is what to offer: no stdio transport to an
operator, a form that says why it is locked where the API would refuse.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from registry.models import DEFAULT_MAX_CONCURRENCY, Server, Transport
from registry.permissions import Role, role_of
from registry.policies import require_may_change
from registry.views import viewer_required

OPERATOR_NEEDED = "Managing servers needs the operator role."


def transports_for(role: Role) -> list[tuple[str, str]]:
    """The transports a role may choose: stdio runs a command on this machine, so only admins are offered it."""
    return [(value, label) for value, label in Transport.choices if value != Transport.STDIO or role >= Role.ADMIN]


def change_refusal(role: Role, server: Server) -> str:
    """Why this role may not change or remove `server` ('' when it may): the API's rules, asked, not copied."""
    try:
        require_may_change(role=role, server=server, transport=server.transport)
    except PermissionDenied as refused:
        return str(refused)
    return ""


def _operator(request: HttpRequest) -> Role:
    role = role_of(request.user)
    if role < Role.OPERATOR:
        raise PermissionDenied(OPERATOR_NEEDED)
    return role


def _definition_of(server: Server | None) -> dict[str, Any]:
    """The form's starting values: a new server's defaults, or the stored definition without its secrets."""
    if server is None:
        return {
            "name": "",
            "display_name": "",
            "description": "",
            "transport": Transport.HTTP,
            "url": "",
            "command": "",
            "args": [],
            "cwd": "",
            "server_type": "generic",
            "tags": [],
            "priority": 100,
            "enabled": True,
            "metadata": {},
            "request_timeout_seconds": 10.0,
            "max_concurrency": DEFAULT_MAX_CONCURRENCY,
        }
    return {
        "name": server.name,
        "display_name": server.display_name,
        "description": server.description,
        "transport": server.transport,
        "url": server.url,
        "command": server.command,
        "args": list(server.args),
        "cwd": server.cwd,
        "server_type": server.server_type,
        "tags": sorted(tag.name for tag in server.tags.all()),
        "priority": server.priority,
        "enabled": server.enabled,
        "metadata": server.metadata,
        "request_timeout_seconds": server.request_timeout_seconds,
        "max_concurrency": server.max_concurrency,
    }


def _form(request: HttpRequest, server: Server | None) -> HttpResponse:
    role = _operator(request)
    definition = _definition_of(server)
    context = {
        "server": server,
        "definition": definition,
        "args_text": "\n".join(definition["args"]),
        "tags_text": ", ".join(definition["tags"]),
        "metadata_text": json.dumps(definition["metadata"], indent=2) if definition["metadata"] else "",
        "transports": transports_for(role),
        "is_admin": role >= Role.ADMIN,
        "env_keys": sorted(server.env) if server else [],
        "header_keys": sorted(server.headers) if server else [],
        "locked_reason": change_refusal(role, server) if server else "",
    }
    return render(request, "registry/server_form.html", context)


@viewer_required
def server_add(request: HttpRequest) -> HttpResponse:
    return _form(request, None)


@viewer_required
def server_edit(request: HttpRequest, name: str) -> HttpResponse:
    return _form(request, get_object_or_404(Server.objects.prefetch_related("tags"), name=name))


@viewer_required
def registry_transfer(request: HttpRequest) -> HttpResponse:
    """Export (operators: without secrets; admins may include them) and import with a dry-run preview (admins: the
    import API is theirs, as a document may define commands to run)."""
    role = _operator(request)
    return render(
        request,
        "registry/registry_transfer.html",
        {"is_admin": role >= Role.ADMIN, "server_count": Server.objects.count()},
    )
