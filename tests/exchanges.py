"""Demo exchanges registered for tests over the real protocol, and waiting until they are discovered.

An exchange is served by the suite's exchange host (one `exchange_fleet serve-host` process per test process, started
at first use) unless the test needs a process of its own (`stdio=True`: to kill it, or for stdio itself): a fresh
exchange with the same flags, over Streamable HTTP, without the second of CPU each Python process start costs.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import threading
import urllib.request

from django.conf import settings

from exchange_fleet.launcher import free_port, start_exchange_host, stop_process
from registry.discovery import discover_and_record
from registry.models import Capability, CapabilityKind, Server
from registry.services import server_create
from tests.waiting import wait_for


class ExchangeHost:
    """This test process's exchange host: started at first use, stopped at exit; retires what a test made."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._base_url = ""
        self._made: list[str] = []

    def _running(self) -> str:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                port = free_port()
                self._process = start_exchange_host(port)
                self._base_url = f"http://127.0.0.1:{port}"
                atexit.register(stop_process, self._process)
            return self._base_url

    def fresh_exchange_url(self, *serve_flags: str) -> str:
        """The URL of a new exchange, as `python -m exchange_fleet serve <serve_flags>` would run it."""
        base_url = self._running()
        request = urllib.request.Request(
            f"{base_url}/exchanges",
            data=json.dumps({"argv": list(serve_flags)}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            made = json.load(response)
        self._made.append(made["key"])
        return base_url + made["path"]

    def retire_made(self) -> None:
        """Stop every exchange made since the last call (after the test's sessions closed)."""
        made, self._made = self._made, []
        for key in made:
            request = urllib.request.Request(f"{self._base_url}/exchanges/{key}", method="DELETE")
            with urllib.request.urlopen(request, timeout=30):
                pass


EXCHANGE_HOST = ExchangeHost()


def register_exchange(
    name: str,
    *extra: str,
    profile: str = "alpha",
    server_type: str = "exchange",
    priority: int = 100,
    stdio: bool = False,
) -> Server:
    """A demo exchange without its profile's outages and random failures (unless `extra` asks for them); a child
    process over stdio when `stdio`, else a fresh exchange of the exchange host."""
    flags = ["--profile", profile, "--no-outages", "--error-rate", "0", *extra]
    if not stdio:
        return server_create(
            name=name,
            transport="http",
            url=EXCHANGE_HOST.fresh_exchange_url(*flags),
            server_type=server_type,
            priority=priority,
        )
    return server_create(
        name=name,
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", *flags],
        cwd=str(settings.BASE_DIR),
        server_type=server_type,
        priority=priority,
    )


def discovered_exchange(
    name: str = "exchange-alpha", *extra: str, profile: str = "alpha", stdio: bool = False
) -> Server:
    """A demo exchange registered and discovered now, without the supervisor (the session opens on demand)."""
    server = register_exchange(name, *extra, profile=profile, stdio=stdio)
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
