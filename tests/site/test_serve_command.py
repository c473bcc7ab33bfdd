"""`manage.py serve --demo`, the way an operator runs it: it serves, and Ctrl-C (or SIGTERM) leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from registry.connections.processes import child_pids


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = set().union(*(child_pids(parent) for parent in frontier)) - found
        found |= children
        frontier = children
    return found


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_demo_serves_and_stops_cleanly_without_orphans(tmp_path: Path, stop_signal: signal.Signals):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["ORCHESTRATOR_VAR_DIR"] = str(tmp_path)
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=120)
    # A background process started from a script inherits "SIGINT ignored"; restore the default like a terminal.
    server = subprocess.Popen(
        [*manage, "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            output.append(line)
            if "Log in as" in line or not line:
                break
        assert any("Dashboard: http://127.0.0.1" in line for line in output), "".join(output)
        # The dashboard answers (a redirect to the login page) and the fleet's sessions come up.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=10) as response:
            assert response.status == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_descendants(server.pid)) < 5:
            time.sleep(0.2)
        children = _descendants(server.pid)
        # Four stdio exchanges (the connection layer's children) and one HTTP exchange (the demo's child).
        assert len(children) >= 5, children

        server.send_signal(stop_signal)
        rest, _ = server.communicate(timeout=40)
        output.append(rest)
        assert "Stopped cleanly." in rest, "".join(output)
        time.sleep(0.5)
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
