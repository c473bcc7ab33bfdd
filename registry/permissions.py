"""Who may do what. Roles: admin (staff), operator and viewer (Django groups); everyone else is an outsider.

Registering or changing a stdio server runs a command on this machine, so only admins may; operators may
register HTTP/SSE servers, discover and export without secrets; viewers only read.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

OPERATOR_GROUP = "operators"
VIEWER_GROUP = "viewers"


class Role(IntEnum):
    OUTSIDER = 0
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3


def role_of(user: AbstractBaseUser | AnonymousUser | None) -> Role:
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.OUTSIDER
    if user.is_superuser or user.is_staff:
        return Role.ADMIN
    group_names = set(user.groups.values_list("name", flat=True))
    if OPERATOR_GROUP in group_names:
        return Role.OPERATOR
    if VIEWER_GROUP in group_names:
        return Role.VIEWER
    return Role.OUTSIDER


class _RoleAtLeast(BasePermission):
    required: Role = Role.ADMIN
    message = "You need a higher role for this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return role_of(request.user) >= self.required


class IsViewer(_RoleAtLeast):
    required = Role.VIEWER
    message = "You need the viewer role (or higher) to use the orchestrator."


class IsOperator(_RoleAtLeast):
    required = Role.OPERATOR
    message = "This needs the operator role."


class IsAdmin(_RoleAtLeast):
    required = Role.ADMIN
    message = "This needs an admin: it can run commands on the orchestrator's machine."


class ReadForViewersWriteForOperators(BasePermission):
    message = "Viewers may only read; changing the registry needs the operator role."

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = Role.VIEWER if request.method in SAFE_METHODS else Role.OPERATOR
        return role_of(request.user) >= needed
