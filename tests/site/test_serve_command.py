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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(descendants(demo.process.pid)) < 5:
            time.sleep(0.2)
        children = descendants(demo.process.pid)
        # Four stdio exchanges (the connection layer's children) and one HTTP exchange (the demo's child).
        assert len(children) >= 5, children

        demo.process.send_signal(stop_signal)
        rest, _ = demo.process.communicate(timeout=40)
        assert "Stopped cleanly." in rest, "".join(demo.output) + rest
        time.sleep(0.5)
        assert [pid for pid in children if is_alive(pid)] == []
