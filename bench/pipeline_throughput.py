"""Events per second through the pipeline's bus, and kept in the history, against plain baselines in the same run.

    .venv/bin/python -m bench.pipeline_throughput                 # 200,000 events, 4 subscribers
    .venv/bin/python -m bench.pipeline_throughput --events 50000 --json

1. The bus in one process with 4 subscribers (each wants every event, reads in batches): events published, sequenced
   and queued for all four, per second. Baseline: the same events put into four bounded asyncio.Queues by hand.
   Target: at least 50,000 events/s.
2. Persisted: the bus plus the history, as the forwarder keeps it (batches of 500), on SQLite and on Redis Streams
   (sequence numbers and entries in one Lua call per batch). Baselines: Django bulk_create of the same rows; a
   pipelined XADD of the same entries. Target: at least 20,000 events/s on each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = {"exchange": "alpha", "symbol": "BTC-USD", "bid": 65000.12, "ask": 65010.5, "last": 65005.0, "size": 0.25}


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("ORCHESTRATOR_VAR_DIR", str(REPO / "var" / "bench"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


async def bus_rate(events: int, subscribers: int) -> float:
    from pipeline.bus import EventBus
    from pipeline.metrics import PipelineMetrics

    bus = EventBus(metrics=PipelineMetrics(), ingest_limit=events + 1)
    await bus.start()
    readers = [bus.subscribe(["quotes.*"], name=f"r{i}", maxsize=events + 1) for i in range(subscribers)]

    async def read(subscription: Any) -> None:
        got = 0
        while got < events:
            got += len(await subscription.next_batch(limit=5_000))

    tasks = [asyncio.create_task(read(r)) for r in readers]
    started = time.perf_counter()
    for i in range(events):
        bus.publish("quotes.BTC-USD" if i % 2 else "quotes.ETH-USD", "quote", PAYLOAD, server="alpha")
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    await bus.stop()
    return events / elapsed


async def queue_baseline(events: int, subscribers: int) -> float:
    queues: list[asyncio.Queue[Any]] = [asyncio.Queue(maxsize=events + 1) for _ in range(subscribers)]

    async def read(queue: asyncio.Queue[Any]) -> None:
        for _ in range(events):
            await queue.get()

    tasks = [asyncio.create_task(read(q)) for q in queues]
    started = time.perf_counter()
    for i in range(events):
        item = ("quotes.BTC-USD" if i % 2 else "quotes.ETH-USD", i, PAYLOAD)
        for queue in queues:
            queue.put_nowait(item)
        if i % 5_000 == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    return events / (time.perf_counter() - started)


async def persisted_rate(store: Any, events: int) -> float:
    """Publish through a bus sequenced by the store and keep every batch, as the forwarder does."""
    from pipeline.bus import EventBus
    from pipeline.metrics import PipelineMetrics

    bus = EventBus(sequencer=store.sequencer(), metrics=PipelineMetrics(), ingest_limit=events + 1)
    await bus.start()
    keeper = bus.subscribe(["*"], name="keeper", maxsize=events + 1)
    started = time.perf_counter()
    for i in range(events):
        bus.publish(f"bench.s{i % 4}", "quote", PAYLOAD, server="alpha")
    kept = 0
    while kept < events:
        batch = [e for e in await keeper.next_batch(limit=500) if hasattr(e, "seq")]
        await store.persist(batch)
        kept += len(batch)
    elapsed = time.perf_counter() - started
    await bus.stop()
    return events / elapsed


def bulk_create_baseline(events: int) -> float:
    from datetime import UTC, datetime

    from django.db import transaction

    from pipeline.models import StoredEvent

    now = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, events, 500):
        rows = [
            StoredEvent(stream="baseline.s", seq=start + i + 1, kind="quote", server="alpha", at=now, payload=PAYLOAD)
            for i in range(min(500, events - start))
        ]
        with transaction.atomic():
            StoredEvent.objects.bulk_create(rows)
    elapsed = time.perf_counter() - started
    StoredEvent.objects.filter(stream="baseline.s").delete()
    return events / elapsed


def xadd_baseline(url: str, prefix: str, events: int) -> float:
    import redis

    client = redis.Redis.from_url(url)
    key = f"{prefix}baseline"
    started = time.perf_counter()
    for start in range(0, events, 500):
        pipe = client.pipeline(transaction=False)
        for i in range(min(500, events - start)):
            pipe.xadd(key, {"e": json.dumps(["quote", "alpha", 0.0, PAYLOAD])}, id=f"{start + i + 1}-0")
        pipe.execute()
    elapsed = time.perf_counter() - started
    client.delete(key)
    client.close()
    return events / elapsed


def verdict(value: float, target: float) -> str:
    return "PASS" if value >= target else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline_throughput")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--persist-events", type=int, default=50_000)
    parser.add_argument("--subscribers", type=int, default=4)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    setup_django()
    from django.conf import settings

    from pipeline.models import StoredEvent
    from pipeline.stores import DatabaseEventStore, RedisEventStore

    results: dict[str, Any] = {}
    bus = asyncio.run(bus_rate(args.events, args.subscribers))
    baseline = asyncio.run(queue_baseline(args.events, args.subscribers))
    results["bus"] = {"events_per_s": round(bus), "baseline_queues_per_s": round(baseline), "ratio": bus / baseline}

    StoredEvent.objects.filter(stream__startswith="bench.").delete()
    database = DatabaseEventStore()
    sqlite_rate = asyncio.run(persisted_rate(database, args.persist_events))
    database.close()
    StoredEvent.objects.filter(stream__startswith="bench.").delete()
    sqlite_baseline = bulk_create_baseline(args.persist_events)
    results["sqlite" if "sqlite" in settings.DATABASES["default"]["ENGINE"] else "database"] = {
        "events_per_s": round(sqlite_rate),
        "baseline_bulk_create_per_s": round(sqlite_baseline),
        "ratio": sqlite_rate / sqlite_baseline,
    }

    prefix = f"bench-{os.getpid()}:"
    try:
        redis_store = RedisEventStore(url=args.redis_url, prefix=prefix)
        redis_rate = asyncio.run(persisted_rate(redis_store, args.persist_events))
        redis_store.close()
        redis_baseline = xadd_baseline(args.redis_url, prefix, args.persist_events)
        results["redis"] = {
            "events_per_s": round(redis_rate),
            "baseline_pipelined_xadd_per_s": round(redis_baseline),
            "ratio": redis_rate / redis_baseline,
        }
    except Exception as error:  # no Redis here: say so, the rest still counts
        results["redis"] = {"error": f"{type(error).__name__}: {error}"}
    finally:
        try:
            import redis

            client = redis.Redis.from_url(args.redis_url)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
            client.close()
        except Exception:
            pass

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"bus, {args.subscribers} subscribers, {args.events} events:")
    print(
        f"  {results['bus']['events_per_s']:>9,} events/s   baseline (4 asyncio.Queues) "
        f"{results['bus']['baseline_queues_per_s']:,}/s   ratio {results['bus']['ratio']:.2f}   "
        f"target >= 50,000: {verdict(bus, 50_000)}"
    )
    for name, target in (("sqlite", 20_000), ("database", 20_000), ("redis", 20_000)):
        if name not in results:
            continue
        row = results[name]
        if "error" in row:
            print(f"persisted on {name}: not measured ({row['error']})")
            continue
        baseline_name, baseline_value = next((k, v) for k, v in row.items() if k.startswith("baseline"))
        print(f"persisted on {name}, {args.persist_events} events:")
        print(
            f"  {row['events_per_s']:>9,} events/s   {baseline_name} {baseline_value:,}/s   "
            f"ratio {row['ratio']:.2f}   target >= {target:,}: {verdict(row['events_per_s'], target)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
