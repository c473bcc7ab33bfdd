"""Processors: named stages that read some streams and publish derived events, each with its own metrics.

Register one with `@register_processor("name", streams=["quotes.*"])` on a class whose instances have
`process(event) -> list[Derived]`; the pipeline runs one instance per registered name, on its own bus subscription,
so a slow processor only delays itself. An exception in `process` is counted and logged; the processor goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.bus import EventBus
from pipeline.events import Event, Gap
from pipeline.metrics import Ring

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Derived:
    stream: str
    kind: str
    payload: dict[str, Any]
    server: str | None = None


class Processor(Protocol):
    def process(self, event: Event) -> list[Derived]: ...


@dataclass(frozen=True)
class ProcessorSpec:
    name: str
    streams: tuple[str, ...]
    factory: Callable[[], Processor]


PROCESSORS: dict[str, ProcessorSpec] = {}


def register_processor(name: str, *, streams: list[str]) -> Callable[[type], type]:
    def register(cls: type) -> type:
        PROCESSORS[name] = ProcessorSpec(name=name, streams=tuple(streams), factory=cls)
        return cls

    return register


class ProcessorRun:
    """One processor at work: its subscription, its task and its numbers."""

    def __init__(self, spec: ProcessorSpec, bus: EventBus, queue_size: int) -> None:
        self.spec = spec
        self.bus = bus
        self.processor = spec.factory()
        self.subscription = bus.subscribe(spec.streams, name=f"processor:{spec.name}", maxsize=queue_size)
        self.events_in = 0
        self.events_out = 0
        self.errors = 0
        self.gaps = 0
        self.last_error = ""
        self.timing = Ring(1_024)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"processor-{self.spec.name}")

    async def _run(self) -> None:
        while not self.subscription.closed:
            batch = await self.subscription.next_batch(limit=500)
            for item in batch:
                if isinstance(item, Gap):
                    self.gaps += item.missed
                    continue
                self.events_in += 1
                started = time.perf_counter()
                try:
                    derived = self.processor.process(item)
                except Exception as error:
                    self.errors += 1
                    self.last_error = f"{type(error).__name__}: {str(error)[:200]}"
                    logger.exception("processor %s failed on %s#%s", self.spec.name, item.stream, item.seq)
                    continue
                finally:
                    self.timing.add(time.perf_counter() - started)
                for out in derived:
                    if self.bus.publish(out.stream, out.kind, out.payload, server=out.server):
                        self.events_out += 1

    async def stop(self) -> None:
        self.subscription.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "streams": list(self.spec.streams),
            "events_in": self.events_in,
            "events_out": self.events_out,
            "errors": self.errors,
            "last_error": self.last_error,
            "missed": self.gaps,
            "queue_depth": self.subscription.depth,
            "processing_ms": self.timing.summary(scale=1000.0),
        }
