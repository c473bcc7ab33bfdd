"""Runs a part of the API fuzz (api_fuzz_suite.py) in a pytest process of its own; see that module for why.

The fuzz is split into parts, each a test file of its own (test_api_fuzz_part_*.py), so that the parallel test
workers run the parts at once: in one piece it was the longest job of a pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SUITE = Path(__file__).parent / "api_fuzz_suite.py"
PARTS = 2


def run_fuzz_part(part: int, var_dir: Path) -> None:
    files = sorted(Path(__file__).parents[1].glob("test_api_fuzz_part_*.py"))
    assert len(files) == PARTS, f"{len(files)} part files for {PARTS} parts: some operations would go unfuzzed"
    # Its own SQLite test database (named after its pid), whatever database this run uses.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTEST_ADDOPTS")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:xdist", str(SUITE)],
        env={**env, "ORCHESTRATOR_VAR_DIR": str(var_dir), "FUZZ_PART": f"{part}/{PARTS}"},
        capture_output=True,
        text=True,
        timeout=880,
        cwd=Path(__file__).parents[3],
    )
    tail = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, tail
    assert "1 passed" in done.stdout, tail
