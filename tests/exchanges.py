"""Demo exchanges registered as stdio servers for tests over the real protocol, and waiting until they are
discovered."""

from __future__ import annotations

import sys

from django.conf import settings

from registry.discovery import discover_and_record
from registry.models import Capability, CapabilityKind, Server
from registry.services import server_create
from tests.waiting import wait_for


def register_exchange(
    name: str, *extra: str, profile: str = "alpha", server_type: str = "exchange", priority: int = 100
) -> Server:
    """A demo exchange without its profile's outages and random failures (unless `extra` asks for them)."""
    return server_create(
        name=name,
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", profile, "--no-outages", "--error-rate", "0", *extra],
        cwd=str(settings.BASE_DIR),
        server_type=server_type,
        priority=priority,
    )


def discovered_exchange(name: str = "exchange-alpha", *extra: str, profile: str = "alpha") -> Server:
    """A demo exchange registered and discovered now, without the supervisor (the session opens on demand)."""
    server = register_exchange(name, *extra, profile=profile)
    assert discover_and_record(server=server)["ok"]
    return server


def wait_discovered(live_fleet, *names: str, tool: str = "get_quote") -> None:  # type: ignore[no-untyped-def]
    """Every named server connected and discovered (it then offers `tool`)."""
    live_fleet.request_reconcile()
    wait_for(
        lambda: (
            Capability.objects.filter(server__name__in=names, kind=CapabilityKind.TOOL, name=tool).count() == len(names)
        ),
        what=f"{', '.join(names)} discovered",
    )
