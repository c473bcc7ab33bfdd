"""Run every benchmark module in this package, one subprocess each (isolated loops, runtimes and children).

    .venv/bin/python -m bench              # all benchmarks, tables
    .venv/bin/python -m bench --json       # extra arguments are passed to every benchmark
    .venv/bin/python -m bench.run_all --only connection_overhead

A benchmark module is any module here (other than this runner) that defines `main(argv) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"__main__", "run_all"}


def benchmark_modules() -> list[str]:
    names = []
    for info in pkgutil.iter_modules([str(PACKAGE_DIR)]):
        if info.name in NOT_BENCHMARKS or info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "main", None)):
            names.append(info.name)
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="run every benchmark module")
    parser.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    args, passthrough = parser.parse_known_args(argv)
    names = args.only or benchmark_modules()
    failures = []
    for name in names:
        print(f"=== bench.{name} ===", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", f"bench.{name}", *passthrough], cwd=PACKAGE_DIR.parent)
        print(f"=== bench.{name}: exit {done.returncode} in {time.perf_counter() - started:.1f}s ===\n", flush=True)
        if done.returncode != 0:
            failures.append(name)
    if failures:
        print("benchmarks that crashed:", ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
