"""The pipeline's counters, in one process: events in and out per stream, drops, publish-to-delivery lag, batch
sizes. Written from the bus loop and from the web server's loop (the consumers); read by the metrics API and page.

Counters are plain integers (updated under the GIL, read as a snapshot); lags and batch sizes keep the latest
samples in bounded rings, enough for percentiles without unbounded memory.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Any

SAMPLES = 4_096


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


class Ring:
    """The latest `size` samples (a bounded deque) with percentiles."""

    def __init__(self, size: int = SAMPLES) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(value)
            self.count += 1

    def summary(self, scale: float = 1.0) -> dict[str, Any]:
        with self._lock:
            values = sorted(self._values)
        if not values:
            return {"samples": 0, "p50": None, "p95": None, "p99": None, "max": None}
        return {
            "samples": len(values),
            "p50": round(percentile(values, 0.50) * scale, 3),
            "p95": round(percentile(values, 0.95) * scale, 3),
            "p99": round(percentile(values, 0.99) * scale, 3),
            "max": round(values[-1] * scale, 3),
        }


class PipelineMetrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.published: defaultdict[str, int] = defaultdict(int)
        self.delivered: defaultdict[str, int] = defaultdict(int)
        self.ingest_dropped: defaultdict[str, int] = defaultdict(int)
        self.persisted = 0
        self.persist_failures = 0
        self.sent_to_browsers = 0
        self.browser_gaps = 0
        self.lag = Ring()
        self.bus_batch = Ring()
        self.socket_batch = Ring()

    def delivered_to_browser(self, at: float, now: float | None = None) -> None:
        self.lag.add((now if now is not None else time.time()) - at)

    def snapshot(self) -> dict[str, Any]:
        streams = sorted(set(self.published) | set(self.delivered) | set(self.ingest_dropped))
        return {
            "since": self.started,
            "streams": {
                stream: {
                    "in": self.published.get(stream, 0),
                    "out": self.delivered.get(stream, 0),
                    "dropped_at_ingest": self.ingest_dropped.get(stream, 0),
                }
                for stream in streams
            },
            "events_in": sum(self.published.values()),
            "events_out": sum(self.delivered.values()),
            "dropped_at_ingest": sum(self.ingest_dropped.values()),
            "persisted": self.persisted,
            "persist_failures": self.persist_failures,
            "sent_to_browsers": self.sent_to_browsers,
            "gaps_sent_to_browsers": self.browser_gaps,
            "publish_to_browser_lag_ms": self.lag.summary(scale=1000.0),
            "bus_batch_size": self.bus_batch.summary(),
            "socket_batch_size": self.socket_batch.summary(),
        }


# This process's numbers: the running pipeline's bus and every events socket count here.
PIPELINE_METRICS = PipelineMetrics()
