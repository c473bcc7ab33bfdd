"""The API fuzz (tests/site/fuzz/api_fuzz_suite.py) in a process of its own; see that module for why and what."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).parent / "fuzz" / "api_fuzz_suite.py"


@pytest.mark.timeout(900)
def test_no_generated_request_makes_a_server_error(tmp_path):
    # Its own SQLite test database (named after its pid), whatever database this run uses.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTEST_ADDOPTS")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", str(SUITE)],
        env={**env, "ORCHESTRATOR_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=880,
        cwd=Path(__file__).parents[2],
    )
    tail = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, tail
    assert "1 passed" in done.stdout, tail
