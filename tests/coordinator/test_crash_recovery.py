"""The orchestrator killed after a transaction's decision (a real separate process), then recovery on the next
start: what was decided is confirmed on every participant, nothing is filled twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("crash_recovery_script.py")


def run(phase: str, var_dir: Path, ledgers: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), phase, str(var_dir), str(ledgers)],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_transaction_decided_before_a_crash_is_finished_by_the_next_start(tmp_path):
    var_dir, ledgers = tmp_path / "var", tmp_path / "ledgers"
    var_dir.mkdir()
    ledgers.mkdir()
    crashed = run("crash", var_dir, ledgers)
    assert crashed.returncode == 70, crashed.stderr[-2000:]
    assert "stopping right after the decision" in crashed.stderr
    # The exchanges' ledgers kept the reservations the dead orchestrator made.
    assert {path.name for path in ledgers.iterdir()} >= {"crash-a.json", "crash-b.json"}

    recovered = run("recover", var_dir, ledgers)
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    report = json.loads(recovered.stdout.strip().splitlines()[-1])
    before, after = report["before"], report["after"]
    assert before["transaction"]["state"] == "committing" and before["transaction"]["decision"] == "commit"
    assert before["reservations"] == {"crash-a": "reserved", "crash-b": "reserved"}
    assert after["transaction"]["state"] == "committed"
    assert after["reservations"] == {"crash-a": "confirmed", "crash-b": "confirmed"}
    assert [p["state"] for p in after["transaction"]["participants"]] == ["confirmed", "confirmed"]
