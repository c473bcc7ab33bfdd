"""The pipeline at work in this process: the bus, the store, the forwarder to the browsers, the processors, the
producers and the history pruner, all on the fleet loop. `publish` is the one way anything publishes an event.

The fleet application (fleet/application.py) builds it, starts it before the supervisor (so the first status
changes already travel) and stops it after; `publish` feeds the running application's pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings

from fleet import application
from fleet.orm_worker import OrmWorker
from pipeline import spreads  # noqa: F401 - registers the reference processor
from pipeline.bus import EventBus
from pipeline.call_progress import CallProgressEvents
from pipeline.forwarding import Forwarder
from pipeline.metrics import PIPELINE_METRICS
from pipeline.processors import PROCESSORS, ProcessorRun
from pipeline.producers import ProducerManager
from pipeline.stores import DatabaseEventStore, RedisEventStore, event_store

logger = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 60.0


class Pipeline:
    def __init__(
        self,
        store: DatabaseEventStore | RedisEventStore | None = None,
        *,
        producers: bool = True,
        producer_refresh_seconds: float = 5.0,
        producer_db: OrmWorker | None = None,
    ) -> None:
        self.store = store or event_store()
        self.bus = EventBus(
            sequencer=self.store.sequencer(),
            metrics=PIPELINE_METRICS,
            slow_wait_seconds=settings.PIPELINE_SLOW_SUBSCRIBER_WAIT_SECONDS,
        )
        self.forwarder: Forwarder | None = None
        self.processors: list[ProcessorRun] = []
        self.producers = (
            ProducerManager(self.bus, refresh_seconds=producer_refresh_seconds, _db=producer_db) if producers else None
        )
        self.prune_errors = 0
        self._pruner: asyncio.Task[None] | None = None
        self.call_progress: CallProgressEvents | None = None

    async def start(self) -> None:
        await self.bus.start()
        self.forwarder = Forwarder(self.bus, self.store)
        self.forwarder.start()
        for spec in PROCESSORS.values():
            run = ProcessorRun(spec, self.bus, settings.PIPELINE_SUBSCRIBER_QUEUE)
            run.start()
            self.processors.append(run)
        if self.producers is not None:
            await self.producers.start()
        # Tool calls' progress (calls.progress), from the hub's progress stream.
        self.call_progress = CallProgressEvents(self.bus)
        self.call_progress.start()
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever(), name="pipeline-pruner")

    async def stop(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            await asyncio.gather(self._pruner, return_exceptions=True)
        if self.call_progress is not None:
            await self.call_progress.stop()
        if self.producers is not None:
            await self.producers.stop()
        for run in self.processors:
            await run.stop()
        # Let what producers and processors published reach the forwarder, then keep and deliver it.
        await self.bus.stop(drain_timeout=2.0)
        if self.forwarder is not None:
            await self.forwarder.stop()
        if isinstance(self.store, RedisEventStore):
            await self.store.aclose()
        self.store.close()

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_SECONDS)
            try:
                removed = await self.store.prune_async()
                if removed:
                    logger.debug("pipeline: %d events fell out of retention", removed)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.prune_errors += 1
                logger.exception("pipeline: pruning the history failed; it is tried again later")

    def stats(self) -> dict[str, Any]:
        return {
            "store": "redis" if isinstance(self.store, RedisEventStore) else "database",
            "bus": self.bus.stats(),
            "forwarder": self.forwarder.stats() if self.forwarder is not None else None,
            "processors": [run.stats() for run in self.processors],
            "producers": self.producers.describe() if self.producers is not None else [],
            "prune_errors": self.prune_errors,
            **self.bus.metrics.snapshot(),
        }


_unrouted = 0


def live_pipeline() -> Pipeline | None:
    """The running fleet application's pipeline, if it runs one."""
    running = application.running()
    return running.pipeline if running is not None else None


def publish(stream: str, kind: str, payload: dict[str, Any], *, server: str | None = None) -> bool:
    """Publish an event on the running pipeline, from any thread or loop, without blocking.

    False when no pipeline runs in this process (a management command, a test without one) or its ingest queue
    is full; both are counted, never raised, so a publisher never fails because of its audience.
    """
    global _unrouted
    pipeline = live_pipeline()
    if pipeline is None:
        _unrouted += 1
        return False
    return pipeline.bus.publish(stream, kind, payload, server=server)


def refresh_producers() -> None:
    pipeline = live_pipeline()
    if pipeline is not None and pipeline.producers is not None:
        pipeline.producers.refresh_soon()
