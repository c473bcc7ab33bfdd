"""The interpreter's garbage collector, tuned for a process that keeps a fleet of sessions open.

With the default thresholds (a young collection every 700 allocations) the objects of every request in flight
live through several young collections and are promoted to the oldest generation, which then grows by a quarter
every few seconds and triggers a full collection: a stop of every thread for ~250 ms with 200 sessions and over a
second with 1,000 (measured by bench/health_sweep.py, which reports them), long enough to make healthy servers'
checks look slow. Young collections every 50,000 allocations let a request's objects die young; full collections
become rare. Cyclic garbage is still collected, a little later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_fleet() -> None:
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
