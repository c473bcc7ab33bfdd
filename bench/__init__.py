"""Benchmarks. Each module is runnable as `python -m bench.<name>`; `python -m bench` runs them all."""
