"""The demo: the simulated exchange fleet started and registered, and a login to see it with.

stdio exchanges are registered as stdio servers (the connection layer starts them as child processes); the HTTP
one runs as a child process of the serve command, which stops it on exit.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from exchange_fleet.launcher import free_port, port_is_free, start_http_exchange, stop_process
from exchange_fleet.profiles import DEMO_FLEET, ExchangeProfile
from registry.transfer import DOCUMENT_FORMAT, DOCUMENT_VERSION, registry_import

logger = logging.getLogger(__name__)

DEMO_USERNAME = "admin"


@dataclass
class DemoFleet:
    """HTTP exchanges running as our children; stdio ones are the connection layer's children."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    http_ports: dict[str, int] = field(default_factory=dict)

    def start_http_exchanges(self) -> None:
        for profile in DEMO_FLEET:
            if profile.transport != "streamable-http":
                continue
            port = profile.http_port if profile.http_port and port_is_free(profile.http_port) else free_port()
            self.processes.append(start_http_exchange(profile.name, port))
            self.http_ports[profile.name] = port

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)
        self.processes.clear()

    def registry_document(self) -> dict[str, Any]:
        return {
            "format": DOCUMENT_FORMAT,
            "version": DOCUMENT_VERSION,
            "servers": [self._definition(profile) for profile in DEMO_FLEET],
        }

    def _definition(self, profile: ExchangeProfile) -> dict[str, Any]:
        common: dict[str, Any] = {
            "name": f"exchange-{profile.name}",
            "display_name": profile.display_name,
            "description": f"Simulated exchange '{profile.name}' from the demo fleet.",
            "server_type": "exchange",
            "tags": ["demo", "exchange", profile.transport.replace("streamable-", "")],
            "priority": 100,
            "enabled": True,
            "metadata": {"taker_fee": profile.taker_fee, "symbols": list(profile.symbols), "simulated": True},
            "request_timeout_seconds": 10.0,
            "max_concurrency": 8,
        }
        if profile.transport == "streamable-http":
            return {**common, "transport": "http", "url": f"http://127.0.0.1:{self.http_ports[profile.name]}/mcp"}
        return {
            **common,
            "transport": "stdio",
            "command": sys.executable,
            "args": ["-m", "exchange_fleet", "serve", "--profile", profile.name],
            "cwd": str(settings.BASE_DIR),
        }


def demo_register(fleet: DemoFleet) -> dict[str, Any]:
    return registry_import(document=fleet.registry_document()).as_dict()


def demo_login() -> tuple[str, str]:
    """The demo admin's credentials: created once, the password kept in var/ so it stays the same across runs."""
    password_file = Path(settings.VAR_DIR) / "demo-admin-password.txt"
    if password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(12)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
    user, _ = User.objects.get_or_create(username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True})
    if not user.check_password(password):
        user.set_password(password)
    user.is_staff = user.is_superuser = user.is_active = True
    user.save()
    return DEMO_USERNAME, password
