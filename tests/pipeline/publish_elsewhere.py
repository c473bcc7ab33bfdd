"""Run as a separate process by the Redis tests: publish events on a stream through a pipeline of its own.

    python tests/pipeline/publish_elsewhere.py <mode> <stream> <count>
mode "sequence": only sequence and keep them (RedisEventStore), as fast as possible, in batches of 50.
mode "pipeline": a whole pipeline (bus, Redis store, forwarder to channels_redis), so browsers connected to another
process receive them. Prints the sequence numbers it got, as JSON, on its last line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_site.settings")

import django  # noqa: E402

django.setup()

from pipeline.events import Event  # noqa: E402
from pipeline.running import Pipeline  # noqa: E402
from pipeline.stores import RedisEventStore  # noqa: E402


async def sequence_only(stream: str, count: int) -> list[int]:
    store = RedisEventStore()
    await store.prepare()
    seqs: list[int] = []
    for start in range(0, count, 50):
        batch = [
            Event(stream=stream, kind="tick", payload={"pid": os.getpid(), "i": i})
            for i in range(start, min(count, start + 50))
        ]
        await store.sequence(batch)
        seqs.extend(event.seq for event in batch)
    await store.aclose()
    return seqs


async def whole_pipeline(stream: str, count: int) -> list[int]:
    pipeline = Pipeline(RedisEventStore(), producers=False)
    await pipeline.start()
    probe = pipeline.bus.subscribe([stream], name="probe")
    for i in range(count):
        pipeline.bus.publish(stream, "quote", {"exchange": "elsewhere", "i": i, "pid": os.getpid()}, server="elsewhere")
    seqs: list[int] = []
    while len(seqs) < count:
        seqs.extend(item.seq for item in await probe.next_batch() if hasattr(item, "seq"))
    await pipeline.stop()  # hands everything queued to the channel layer before it returns
    return seqs


if __name__ == "__main__":
    mode, stream, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    runner = sequence_only if mode == "sequence" else whole_pipeline
    print(json.dumps(asyncio.run(runner(stream, count))))
