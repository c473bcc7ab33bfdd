"""`manage.py serve --demo`, the way an operator runs it: it serves, and Ctrl-C (or SIGTERM) leaves nothing behind."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

import pytest

from tests.demo_process import descendants, is_alive, running_demo


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_demo_serves_and_stops_cleanly_without_orphans(tmp_path: Path, stop_signal: signal.Signals):
    with running_demo(tmp_path) as demo:
        assert any(f"Dashboard: {demo.base_url}/" in line for line in demo.output), demo.output
        with urllib.request.urlopen(f"{demo.base_url}/accounts/login/", timeout=10) as response:
            assert response.status == 200
        assert wait_until(lambda: len(descendants(demo.process.pid)) >= 5, 30.0)
        children = descendants(demo.process.pid)
        # Four stdio exchanges (the connection layer's children) and one HTTP exchange (the demo's child).
        assert len(children) >= 5, children

        demo.process.send_signal(stop_signal)
        rest, _ = demo.process.communicate(timeout=40)
        assert "Stopped cleanly." in rest, "".join(demo.output) + rest
        assert wait_until(lambda: not [pid for pid in children if is_alive(pid)], 10.0), children


def test_a_killed_demo_leaves_no_exchange_running(tmp_path: Path):
    """kill -9 runs no shutdown code: the HTTP exchange is tied to the demo's life (and the stdio exchanges end
    with their stdin), so the next start does not find a stray exchange beside it."""
    with running_demo(tmp_path) as demo:
        assert wait_until(lambda: len(descendants(demo.process.pid)) >= 5, 30.0)
        children = descendants(demo.process.pid)
        demo.process.kill()
        demo.process.wait(10)
        assert wait_until(lambda: not [pid for pid in children if is_alive(pid)], 15.0), [
            pid for pid in children if is_alive(pid)
        ]


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())
