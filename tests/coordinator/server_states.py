"""Waiting for the status health decides (it is the one decider), and opening a maintenance window, for the
coordinator's tests."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from health.models import MaintenanceWindow
from registry.models import Server, ServerStatus
from tests.waiting import wait_for


def wait_status(*names: str, status: str = ServerStatus.ONLINE) -> None:
    """Health has checked every named server and holds it at `status`: an opportunity executes only between online
    exchanges, so a test executing one waits for this first."""
    wait_for(
        lambda: Server.objects.filter(name__in=names, status=status).count() == len(names),
        what=f"{', '.join(names)} {status}",
    )


def open_maintenance(*names: str, name: str = "exchange upgrade") -> MaintenanceWindow:
    """A window open from a minute ago for an hour over the named servers (health then sets them in maintenance)."""
    window = MaintenanceWindow.objects.create(
        name=name,
        starts_at=timezone.now() - timedelta(minutes=1),
        ends_at=timezone.now() + timedelta(hours=1),
    )
    window.servers.set(Server.objects.filter(name__in=names))
    return window
