"""The bus on its own: sequence numbers, filters changed at run time, bounded queues with gap markers, publishing
from other threads. Real asyncio, no mocks; the bus knows nothing of MCP."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pipeline.bus import EventBus
from pipeline.events import Event, Gap


async def started_bus(**options) -> EventBus:
    bus = EventBus(**options)
    await bus.start()
    return bus


async def drain(subscription, count: int, within: float = 5.0) -> list[Event | Gap]:
    items: list[Event | Gap] = []
    async with asyncio.timeout(within):
        while sum(isinstance(i, Event) for i in items) < count:
            items.extend(await subscription.next_batch())
    return items


async def test_sequence_numbers_grow_by_one_per_stream():
    bus = await started_bus()
    everything = bus.subscribe(["*"], name="all")
    for i in range(5):
        bus.publish("quotes.BTC-USD", "quote", {"i": i})
        bus.publish("quotes.ETH-USD", "quote", {"i": i})
    items = await drain(everything, 10)
    by_stream: dict[str, list[int]] = {}
    for item in items:
        by_stream.setdefault(item.stream, []).append(item.seq)
    assert by_stream == {"quotes.BTC-USD": [1, 2, 3, 4, 5], "quotes.ETH-USD": [1, 2, 3, 4, 5]}
    await bus.stop()


async def test_filters_by_pattern_server_and_kind_and_follow_changes_at_run_time():
    bus = await started_bus()
    quotes_from_alpha = bus.subscribe(["quotes.*"], name="alpha", servers=["alpha"])
    statuses = bus.subscribe(["fleet.status"], name="status", kinds=["status"])
    bus.publish("quotes.BTC-USD", "quote", {}, server="alpha")
    bus.publish("quotes.BTC-USD", "quote", {}, server="beta")
    bus.publish("spreads.BTC-USD", "spread", {}, server="alpha")
    bus.publish("fleet.status", "status", {"status": "online"}, server="alpha")
    bus.publish("fleet.status", "other", {}, server="alpha")
    got_alpha = await drain(quotes_from_alpha, 1)
    got_status = await drain(statuses, 1)
    assert [(e.stream, e.server) for e in got_alpha] == [("quotes.BTC-USD", "alpha")]
    assert [(e.stream, e.kind) for e in got_status] == [("fleet.status", "status")]

    statuses.close()  # removed at run time: the bus stops offering it anything
    assert statuses not in bus.subscriptions
    bus.publish("fleet.status", "status", {}, server="alpha")
    bus.publish("quotes.SOL-USD", "quote", {}, server="alpha")
    assert [(e.stream, e.seq) for e in await drain(quotes_from_alpha, 1)] == [("quotes.SOL-USD", 1)]
    await bus.stop()


async def test_a_stalled_subscriber_loses_its_oldest_events_gets_a_gap_and_does_not_slow_the_others():
    bus = await started_bus(slow_wait_seconds=0.05)
    stalled = bus.subscribe(["quotes.*"], name="stalled", maxsize=10)
    reader = bus.subscribe(["quotes.*"], name="reader", maxsize=10_000)
    for i in range(2_000):
        bus.publish("quotes.BTC-USD", "quote", {"i": i})
    received = await drain(reader, 2_000)
    assert [e.seq for e in received] == list(range(1, 2_001))
    # One bounded wait for the stalled reader, then it lags and loses events at once: not a wait per event.
    assert stalled.waits == 1
    assert stalled.depth == 10 and stalled.dropped == 1_990 and stalled.lagging

    first = stalled.take(100)
    assert first[0] == Gap("quotes.BTC-USD", 1_990)
    assert [e.seq for e in first[1:]] == list(range(1_991, 2_001))
    assert bus.stats()["subscribers"][0]["dropped"] == 1_990
    await bus.stop()


async def test_publishing_from_other_threads_is_safe_and_a_full_ingest_queue_drops_and_counts():
    bus = await started_bus(ingest_limit=1_000_000)
    everything = bus.subscribe(["*"], name="all", maxsize=100_000)

    def publish_many(stream: str) -> None:
        for i in range(5_000):
            bus.publish(stream, "tick", {"i": i})

    threads = [threading.Thread(target=publish_many, args=(f"load.s{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    items = await drain(everything, 20_000, within=20)
    seqs: dict[str, list[int]] = {}
    for item in items:
        seqs.setdefault(item.stream, []).append(item.seq)
    assert {stream: values == list(range(1, 5_001)) for stream, values in seqs.items()} == {
        f"load.s{n}": True for n in range(4)
    }
    await bus.stop()

    # Not started: nothing drains the queue, so the bound shows.
    idle = EventBus(ingest_limit=3)
    assert [idle.publish("x.y", "k", {}) for _ in range(5)] == [True, True, True, False, False]
    assert idle.metrics.ingest_dropped["x.y"] == 2


def test_bad_stream_names_are_refused():
    bus = EventBus()
    for bad in ("", "quotes..x", "quotes.*", "has space", "a" * 201):
        with pytest.raises(ValueError):
            bus.publish(bad, "k", {})
