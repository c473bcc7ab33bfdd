"""The demo: the simulated exchange fleet started and registered, and a login to see it with.

stdio exchanges are registered as stdio servers (the connection layer starts them as child processes); the HTTP
one runs as a child process of the serve command, which stops it on exit.
"""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from exchange_fleet.launcher import free_port, port_is_free, start_http_exchange, stop_process
from exchange_fleet.profiles import DEMO_FLEET, ExchangeProfile
from registry.models import DEFAULT_MAX_CONCURRENCY
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
            # Tied to us: even a kill -9 of the demo stops it, so no stray exchange holds the port next time.
            self.processes.append(start_http_exchange(profile.name, port, tied_to_parent=True))
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
            "metadata": {
                "taker_fee": profile.taker_fee,
                "symbols": list(profile.symbols),
                "simulated": True,
                # A synthetic quote on every check: gamma (150 ms) shows as slow, delta's failing calls as brief
                # pending spells, and its 10 s outage every minute as down and back.
                "health": {
                    "interval_seconds": 2,
                    "retries": 2,
                    "recover_after": 3,
                    "latency_target_ms": 120,
                    "synthetic": {
                        "tool": "get_quote",
                        "arguments": {"symbol": profile.symbols[0]},
                        "expect": {"path": "bid", "op": "gt", "value": 0},
                        "timeout_seconds": 3,
                    },
                },
            },
            "request_timeout_seconds": 10.0,
            "max_concurrency": DEFAULT_MAX_CONCURRENCY,
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


DEMO_RULES: list[dict[str, Any]] = [
    # delta's outage every minute: fires when it goes down, resolves when it is back.
    {
        "name": "server down",
        "kind": "down",
        "severity": "critical",
        "group_wait_seconds": 2,
        "group_interval_seconds": 10,
    },
    {
        "name": "slow server",
        "kind": "latency",
        "threshold": 500,
        "window_seconds": 120,
        "severity": "warning",
        "for_seconds": 30,
    },
    {
        "name": "latency heading for its target",
        "kind": "predicted_breach",
        "horizon_seconds": 3600,
        "severity": "warning",
        "for_seconds": 60,
    },
    {"name": "tools changed", "kind": "capability_drift", "window_seconds": 600, "severity": "info"},
]


def demo_alert_rules() -> int:
    """The demo's alert rules, created once (an admin's changes to them are kept)."""
    from health.models import AlertRule

    created = 0
    for rule in DEMO_RULES:
        _, made = AlertRule.objects.get_or_create(name=rule["name"], defaults=rule)
        created += made
    return created


def demo_login() -> tuple[str, str | None]:
    """The demo admin's credentials: created once with a generated password kept in var/, the same across runs.

    An `admin` account that already exists is never changed (it may be someone's real account): the password is
    returned only when the kept one still works, otherwise None, and the caller says how to log in.
    """
    password_file = Path(settings.VAR_DIR) / "demo-admin-password.txt"
    kept = password_file.read_text().strip() if password_file.exists() else None
    user = User.objects.filter(username=DEMO_USERNAME).first()
    if user is not None:
        return DEMO_USERNAME, kept if kept and user.check_password(kept) else None
    password = kept or secrets.token_urlsafe(12)
    User.objects.create_superuser(DEMO_USERNAME, email="", password=password)
    if kept is None:
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
    return DEMO_USERNAME, password


# The demo's standing question: every exchange's BTC-USD quote, fused by the median with outlier rejection, so
# beta's 0.5 % bias is seen rejected (and its trust falling) on the fusion page within a minute of the start.
DEMO_FUSION_QUERY: dict[str, Any] = {
    "tool": "get_quote",
    "arguments": {"symbol": "BTC-USD"},
    "server_type": "exchange",
    "strategy": "median",
    "fields": ["bid", "ask", "last"],
    "quorum": 3,
    "timeout_seconds": 1.0,
    "deadline_seconds": 1.5,
}


# And an arbitrage analysis across every exchange every 30 s, so the operations page fills as the demo runs.
# Small sizes, so executing the best opportunity each time (as a transaction) lasts the demo exchanges' balances.
DEMO_ARBITRAGE_REQUEST: dict[str, Any] = {"symbols": ["BTC-USD", "ETH-USD", "SOL-USD"], "size": 0.05}
DEMO_BALANCED_CALL: dict[str, Any] = {
    "tool": "get_quote",
    "arguments": {"symbol": "ETH-USD"},
    "server_type": "exchange",
}


class DemoActivity:
    """Asks the demo's standing fusion question every `interval` seconds, and runs an arbitrage analysis every
    `arbitrage_every` rounds, on a thread of its own (both engines are sync: they hand their fan-out to the fleet
    loop and wait). Survives and logs any failure; stops on `stop()`."""

    def __init__(self, interval: float = 20.0, first_after: float = 12.0, arbitrage_every: int = 2) -> None:
        self.interval, self.first_after, self.arbitrage_every = interval, first_after, arbitrage_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-activity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        from django.db import close_old_connections

        from coordinator.arbitrage_workflow import parse_request, run_arbitrage
        from coordinator.balanced_calls import balanced_call, parse_call
        from coordinator.errors import RequestError
        from coordinator.transaction_requests import parse_transaction
        from coordinator.transactions import run_transaction
        from fusion.engine import run_query
        from fusion.query import QueryError, parse_query

        query = parse_query(DEMO_FUSION_QUERY)
        arbitrage = parse_request(DEMO_ARBITRAGE_REQUEST)
        wait, rounds = self.first_after, 0
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                answer = run_query(query, caller="demo")
                logger.info("demo fusion: %s", answer["error"] or f"BTC-USD {answer['value']}")
                for _ in range(2):  # balanced calls, so the routing table has something to show
                    balanced_call(parse_call(DEMO_BALANCED_CALL), created_by="demo")
                if rounds % self.arbitrage_every == 0:
                    report = run_arbitrage(arbitrage, created_by="demo")
                    logger.info("demo arbitrage: %d opportunities", len(report["opportunities"]))
                    if report["opportunities"]:
                        orders, parameters = parse_transaction({"arbitrage": {"operation_id": report["operation_id"]}})
                        tx = run_transaction(orders, created_by="demo", parameters=parameters)
                        logger.info("demo transaction #%s: %s %s", tx.pk, tx.state, tx.reason)
                rounds += 1
            except (QueryError, RequestError) as exc:  # the exchanges are not discovered yet
                logger.info("demo activity: not yet: %s", exc)
                wait = 5.0
            except Exception:  # noqa: BLE001 - a background loop logs and survives anything
                logger.exception("demo activity failed")
            finally:
                close_old_connections()
