"""The demo: the simulated exchange fleet started and registered, and a login to see it with.

stdio exchanges are registered as stdio servers (the connection layer starts them as child processes); the HTTP
one runs as a child process of the serve command, which stops it on exit.
"""

from __future__ import annotations

import logging
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from exchange_fleet.profiles import DEMO_FLEET, ExchangeProfile
from registry.transfer import DOCUMENT_FORMAT, DOCUMENT_VERSION, registry_import

logger = logging.getLogger(__name__)

DEMO_USERNAME = "admin"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the HTTP exchange exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the HTTP exchange did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@dataclass
class DemoFleet:
    """HTTP exchanges running as our children; stdio ones are the connection layer's children."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    http_ports: dict[str, int] = field(default_factory=dict)

    def start_http_exchanges(self) -> None:
        for profile in DEMO_FLEET:
            if profile.transport != "streamable-http":
                continue
            port = profile.http_port if _port_is_free(profile.http_port) else _free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "exchange_fleet", "serve", "--profile", profile.name]
                + ["--transport", "streamable-http", "--host", "127.0.0.1", "--port", str(port)],
                cwd=settings.BASE_DIR,
                stdin=subprocess.DEVNULL,
            )
            self.processes.append(process)
            _wait_for_port(port, process)
            self.http_ports[profile.name] = port

    def stop(self, timeout: float = 5.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
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
