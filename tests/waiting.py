"""Waiting for the event a test expects (polled), never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "the condition") -> float:
    """Wait until `condition()` is true; returns the seconds it took, fails the test after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} ({timeout:g}s)")
