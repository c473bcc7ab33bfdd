"""Checks that `manage.py check --deploy` adds to Django's own."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

from orchestrator_site.environment import LOCAL_SECRET_KEY_FILE


@register(Tags.security, deploy=True)
def secret_key_is_set_for_production(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """The key generated into the var directory is for local use: it is as strong as any, but it lives beside the
    database on one machine, is not shared by the processes of a deployment on several machines, and goes wherever
    that directory is copied. Production brings its own."""
    if not getattr(settings, "SECRET_KEY_IS_LOCAL", False):
        return []
    return [
        Warning(
            f"SECRET_KEY is not set: the key generated for local use ({settings.VAR_DIR / LOCAL_SECRET_KEY_FILE}) "
            "is in use.",
            hint="Set SECRET_KEY in the environment of every process of a production deployment.",
            id="orchestrator.W001",
        )
    ]
