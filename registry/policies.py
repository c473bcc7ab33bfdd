"""Who may do what to the registry, and which server names are free: the one place the REST API, the import and
the admin ask. The callers only say who is asking (a Role); a refusal is Django's PermissionDenied with the reason,
which the API answers as 403 with that reason and the admin as its 403 page.

Registering, changing or deleting a stdio server runs (or ran) a command on the orchestrator's machine, so only
admins may. A server holding secrets (env, headers) is changed or deleted only by admins, so that its credentials
cannot be pointed elsewhere. Secrets leave in an export only for admins.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from registry.models import Server, Transport
from registry.permissions import Role

STDIO_NEEDS_ADMIN = (
    "Only admins may register or change a stdio server: it runs a command on the orchestrator's machine."
)
SECRETS_NEED_ADMIN = (
    "{name} holds secrets ({which}): only admins may change or delete it, so that its credentials cannot be "
    "pointed elsewhere."
)
EXPORTING_SECRETS_NEEDS_ADMIN = "Only admins may export secrets."
NAME_TAKEN = "A server with this name already exists."


def require_may_define(*, role: Role, server: Server | None, transport: str | None = None) -> None:
    """Creating (server None), changing or deleting a server, `transport` the one it is given (if any)."""
    touches_stdio = transport == Transport.STDIO or (server is not None and server.transport == Transport.STDIO)
    if touches_stdio and role < Role.ADMIN:
        raise PermissionDenied(STDIO_NEEDS_ADMIN)


def require_may_change_secret_holder(*, role: Role, server: Server) -> None:
    """Changing or deleting a server that holds env or headers."""
    which = [name for name in ("env", "headers") if getattr(server, name)]
    if server.oauth_client_secret:
        which.append("an OAuth client secret")
    if which and role < Role.ADMIN:
        raise PermissionDenied(SECRETS_NEED_ADMIN.format(name=server.name, which=" and ".join(which)))


def require_may_change(*, role: Role, server: Server | None, transport: str | None = None) -> None:
    """Every rule for writing a server definition: its transport, and its secrets if it exists."""
    require_may_define(role=role, server=server, transport=transport)
    if server is not None:
        require_may_change_secret_holder(role=role, server=server)


def require_may_export(*, role: Role, include_secrets: bool) -> None:
    if include_secrets and role < Role.ADMIN:
        raise PermissionDenied(EXPORTING_SECRETS_NEEDS_ADMIN)


def name_conflicts(*, name: str, server: Server | None = None) -> dict[str, list[str]]:
    """Field errors if another server already has `name` (a server keeps its own name)."""
    others = Server.objects.filter(name=name)
    if server is not None:
        others = others.exclude(pk=server.pk)
    return {"name": [NAME_TAKEN]} if others.exists() else {}
