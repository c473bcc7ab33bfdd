"""Running `manage.py serve --demo` as a real process, the way an operator does, for the tests that need it."""

from __future__ import annotations

import atexit
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from django.conf import settings

from exchange_fleet.launcher import free_port


@dataclass
class RunningDemo:
    process: subprocess.Popen[str]
    base_url: str
    username: str
    password: str
    output: list[str] = field(default_factory=list)


@contextmanager
def running_demo(var_dir: Path, *, start_timeout: float = 60.0) -> Iterator[RunningDemo]:
    """A freshly migrated database in var_dir, the demo started on a free port, yield once it prints the login.

    On exit the demo gets SIGTERM if it is still running (a test may already have stopped it another way).
    """
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL")}
    env["ORCHESTRATOR_VAR_DIR"] = str(var_dir)
    env["DEBUG"] = "1"  # as `make demo` runs it
    env["DJANGO_SETTINGS_MODULE"] = "orchestrator_site.settings"
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    start_lock = _demo_start_lock()
    try:
        _migrated_database(var_dir, manage, env)
        process = subprocess.Popen(
            [*manage, "serve", "--demo", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # A background process started from a script inherits "SIGINT ignored"; restore it like a terminal does.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    except BaseException:
        start_lock.close()
        raise
    output: list[str] = []
    try:
        login = None
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline and login is None:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            login = re.search(r"Log in as (\S+) / (\S+)", line)
        start_lock.close()  # releases it: this demo's ports are taken
        assert login, "the demo did not start:\n" + "".join(output)
        yield RunningDemo(process, f"http://127.0.0.1:{port}", login.group(1), login.group(2), output)
    finally:
        start_lock.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


DATABASE_FILE = "orchestrator.sqlite3"  # settings.py's name for it in the var directory


def _migrated_database(var_dir: Path, manage: list[str], env: dict[str, str]) -> None:
    """A freshly migrated database in var_dir: a copy of one migrated once per test run (with `manage.py migrate`,
    as `make demo` does) rather than a migrate per demo, which cost ~3 s of CPU each. The tests that are about
    migrating run it themselves."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    template = Path(tempfile.gettempdir()) / f"mcp-orchestrator-migrated-{run}"
    template.mkdir(mode=0o700, exist_ok=True)
    with open(template / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / DATABASE_FILE).exists():
            subprocess.run(
                [*manage, "migrate", "-v0"], env={**env, "ORCHESTRATOR_VAR_DIR": str(template)}, check=True, timeout=120
            )
            atexit.register(shutil.rmtree, template, ignore_errors=True)
        var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(template / DATABASE_FILE, var_dir / DATABASE_FILE)


def _demo_start_lock() -> TextIO:
    """Held from a demo's migrate until its login is printed; demos start one at a time across test processes
    (parallel workers). A demo gives its HTTP exchange the profile's port when that port is free: two demos checking
    at once both took it, the second one's exchange failed to bind and its registry pointed at the first demo's
    exchange (offline once that demo stopped). Closing the file releases the lock."""
    lock = open(Path(tempfile.gettempdir()) / "mcp-orchestrator-demo-start.lock", "w")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def descendants(pid: int) -> set[int]:
    from mcp_client.processes import child_pids

    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = set().union(*(child_pids(parent) for parent in frontier)) - found
        found |= children
        frontier = children
    return found


def is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read()
    except OSError:
        return b""
