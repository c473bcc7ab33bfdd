"""A separate orchestrator process for the crash-recovery test (run by test_crash_recovery.py, not by pytest).

    python crash_recovery_script.py crash   VAR_DIR LEDGER_DIR   # runs a transaction and dies after the decision
    python crash_recovery_script.py recover VAR_DIR LEDGER_DIR   # starts again: recovery finishes it; prints JSON

The exchanges are stdio children with ledger files, so their reservations outlive both orchestrator processes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def setup(var_dir: str) -> None:
    sys.path.insert(0, str(REPO))
    os.environ.pop("DATABASE_URL", None)  # this process's own SQLite log, in var_dir
    os.environ.pop("REDIS_URL", None)
    os.environ["ORCHESTRATOR_VAR_DIR"] = var_dir
    os.environ["DEBUG"] = "1"
    os.environ["DJANGO_SETTINGS_MODULE"] = "orchestrator_site.settings"
    import django

    django.setup()


def wait(condition, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise SystemExit("timed out")
        time.sleep(0.1)


def main() -> None:
    phase, var_dir, ledger_dir = sys.argv[1:4]
    setup(var_dir)
    from django.core.management import call_command

    from coordinator.finishing import recover_transactions
    from coordinator.models import Transaction
    from coordinator.transaction_log import transaction_json
    from coordinator.transactions import CRASH_ENV, run_transaction
    from fleet import calls as fleet_calls
    from fleet.application import FleetApplication
    from registry.models import Capability, Server
    from registry.services import server_create

    names = ("crash-a", "crash-b")
    if phase == "crash":
        call_command("migrate", verbosity=0)
        for name in names:
            server_create(
                name=name,
                transport="stdio",
                command=sys.executable,
                args=[
                    "-m",
                    "exchange_fleet",
                    "serve",
                    "--profile",
                    "alpha",
                    "--no-outages",
                    "--error-rate",
                    "0",
                    "--ledger-path",
                    str(Path(ledger_dir) / f"{name}.json"),
                ],
                cwd=str(REPO),
            )
    # Built as serve builds it, but recovery is what this script runs itself (and compares before and after).
    fleet = FleetApplication(recovery=False).start()
    wait(lambda: Capability.objects.filter(server__name__in=names, name="reserve_order").count() == 2)
    if phase == "crash":
        os.environ[CRASH_ENV] = "decision"
        orders = [
            {"server": "crash-a", "symbol": "BTC-USD", "side": "buy", "quantity": 0.01},
            {"server": "crash-b", "symbol": "BTC-USD", "side": "sell", "quantity": 0.01},
        ]
        run_transaction(orders, created_by="crash-test", parameters={"orders": orders})
        raise SystemExit("still alive after the decision")  # the crash hook exits with 70 first

    def reservation(name: str, key: str) -> str:
        wait(
            lambda: (
                fleet_calls.connection_statuses().get(name) is not None
                and fleet_calls.connection_statuses()[name].state == "connected"
            )
        )
        answer = fleet_calls.call_tool_sync(
            Server.objects.get(name=name), "get_reservation", {"idempotency_key": key}, caller="test"
        )
        return answer.result.text if answer.result.is_error else answer.result.structured_content["status"]

    tx = Transaction.objects.get()
    keys = {p.server: p.idempotency_key for p in tx.participants.all()}
    before = {"transaction": transaction_json(tx), "reservations": {n: reservation(n, k) for n, k in keys.items()}}
    recover_transactions(deadline_seconds=60)
    tx.refresh_from_db()
    after = {"transaction": transaction_json(tx), "reservations": {n: reservation(n, k) for n, k in keys.items()}}
    fleet.stop()
    print(json.dumps({"before": before, "after": after}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
