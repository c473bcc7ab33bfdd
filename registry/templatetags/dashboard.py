"""Template helpers for the dashboard shell."""

from __future__ import annotations

from django import template

from registry.models import ServerStatus
from registry.permissions import role_of

register = template.Library()


@register.simple_tag
def user_role(user) -> str:
    """The user's role as a lowercase word (admin, operator, viewer, outsider) for the navigation."""
    return role_of(user).name.lower()


@register.filter
def status_label(status: str) -> str:
    try:
        return ServerStatus(status).label
    except ValueError:
        return status or "Unknown"
