"""Who may do what to the registry: the rules in registry.policies, the same for the API, the import and the admin."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from registry.models import Server
from registry.permissions import Role
from registry.policies import name_conflicts, require_may_change, require_may_export
from registry.services import server_create
from registry.transfer import DOCUMENT_FORMAT, DOCUMENT_VERSION, registry_import

pytestmark = pytest.mark.django_db


def document(**entry: object) -> dict[str, object]:
    return {"format": DOCUMENT_FORMAT, "version": DOCUMENT_VERSION, "servers": [entry]}


def test_an_import_by_an_operator_cannot_define_a_command_and_writes_nothing():
    with pytest.raises(PermissionDenied, match="stdio"):
        registry_import(
            document=document(name="clock", transport="stdio", command="mcp-server-time"), role=Role.OPERATOR
        )
    assert not Server.objects.exists()
    registry_import(
        document=document(name="quotes", transport="http", url="http://127.0.0.1:9/mcp"), role=Role.OPERATOR
    )
    assert Server.objects.filter(name="quotes").exists()


def test_an_import_by_an_operator_cannot_change_a_server_holding_secrets():
    server_create(name="quotes", transport="http", url="http://127.0.0.1:9/mcp", headers={"Authorization": "Bearer x"})
    with pytest.raises(PermissionDenied, match="holds secrets"):
        registry_import(
            document=document(name="quotes", transport="http", url="http://127.0.0.1:9/mcp", priority=1),
            role=Role.OPERATOR,
        )
    assert Server.objects.get(name="quotes").priority == 100
    registry_import(document=document(name="quotes", transport="http", url="http://127.0.0.1:9/mcp", priority=1))
    assert Server.objects.get(name="quotes").priority == 1  # an admin may


def test_the_rules_by_role():
    clock = server_create(name="clock", transport="stdio", command="mcp-server-time")
    for role in (Role.VIEWER, Role.OPERATOR):
        with pytest.raises(PermissionDenied):
            require_may_change(role=role, server=clock)
        with pytest.raises(PermissionDenied):
            require_may_change(role=role, server=None, transport="stdio")
        with pytest.raises(PermissionDenied):
            require_may_export(role=role, include_secrets=True)
        require_may_export(role=role, include_secrets=False)
    require_may_change(role=Role.ADMIN, server=clock, transport="http")
    require_may_change(role=Role.OPERATOR, server=None, transport="http")


def test_a_name_is_free_for_its_own_server_only():
    clock = server_create(name="clock", transport="stdio", command="mcp-server-time")
    assert name_conflicts(name="clock", server=clock) == {}
    assert name_conflicts(name="clock") == {"name": ["A server with this name already exists."]}
    assert name_conflicts(name="other") == {}
