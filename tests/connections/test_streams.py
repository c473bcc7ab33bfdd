"""Session streams: what a demo exchange announces reaches every subscriber; a slow one loses only its own items.
And the one bounded subscription type (session streams and the pipeline's bus), its policies one by one."""

from __future__ import annotations

import asyncio
import sys

from mcp_client import ConnectionHub, ServerTarget
from mcp_client.streams import Gap, Stream, Subscription

from .helpers import REPO, await_until


def exchange_target(key: str) -> ServerTarget:
    return ServerTarget(
        key=key,
        transport="stdio",
        command=sys.executable,
        args=("-m", "exchange_fleet", "serve", "--profile", "alpha", "--tick-interval", "0.05"),
        cwd=str(REPO),
    )


async def test_a_ticker_notification_reaches_two_subscribers_and_a_slow_one_loses_only_its_own(
    hub: ConnectionHub,
) -> None:
    reader = hub.streams.notifications.subscribe(name="reader", maxsize=1_000)
    sleeper = hub.streams.notifications.subscribe(name="sleeper", maxsize=5)  # never reads
    uri = "exchange://alpha/ticker/BTC-USD"
    connection = await hub.ensure(exchange_target("exchange-alpha"))
    await connection.wait_connected(20)
    await connection.subscribe_resources([uri])

    received = []

    async def read_some() -> bool:
        while reader.depth:
            received.append(await reader.get())
        return len([n for n in received if n.params.get("uri") == uri]) >= 20

    assert await await_until(lambda: reader.depth >= 20, 15.0)
    await read_some()
    update = next(n for n in received if n.params.get("uri") == uri)
    assert update.server == "exchange-alpha" and update.method == "notifications/resources/updated"

    # The sleeper kept only its newest 5 and counted the rest; the reader lost nothing.
    assert sleeper.depth == 5 and sleeper.dropped >= 15
    assert reader.dropped == 0
    newest = sleeper.drain()
    assert all(item.method == "notifications/resources/updated" for item in newest)

    # Unsubscribed readers no longer receive; the others go on.
    sleeper.close()
    published = hub.streams.notifications.published
    assert await await_until(lambda: hub.streams.notifications.published > published + 3, 5.0)
    assert sleeper.depth == 0 and reader.depth > 0


# -- the one bounded subscription type, its policies one by one (pure asyncio: no server needed) -------------------


async def test_a_full_subscription_drops_its_oldest_counts_them_and_reports_a_gap_per_key_before_the_rest() -> None:
    queue: Subscription[tuple[str, int]] = Subscription(name="reader", maxsize=3, gap_key=lambda item: item[0])
    for item in [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("b", 3)]:
        queue.put(item)
    assert (queue.depth, queue.dropped, queue.lagging) == (3, 2, True)

    assert queue.take(10) == [Gap("a", 2), ("b", 1), ("b", 2), ("b", 3)]
    assert queue.take(10) == []  # a gap is told once
    assert queue.stats() == {
        "name": "reader",
        "depth": 0,
        "capacity": 3,
        "high_water": 3,
        "delivered": 3,
        "dropped": 2,
        "lagging": False,  # caught up
        "waits": 0,
    }


async def test_a_publisher_that_may_wait_gives_a_full_reader_one_wait_then_drops_at_once() -> None:
    queue: Subscription[int] = Subscription(name="slow", maxsize=1, room_wait_seconds=0.05)
    queue.put(1)
    assert await queue.wait_for_room() is False  # the reader did not make room in time
    queue.put(2)  # so the oldest goes, and the reader lags
    assert (queue.dropped, queue.lagging, queue.waits) == (1, True, 1)
    assert await queue.wait_for_room() is False and queue.waits == 1  # a lagging reader is not waited for again

    queue.take(1)
    queue.put(3)
    reader = asyncio.create_task(queue.next_batch())
    assert await queue.wait_for_room() is True  # a reader that takes in time is waited for
    assert await reader == [3] and queue.waits == 2


async def test_a_session_stream_filters_never_waits_and_a_closed_subscription_ends_its_iteration() -> None:
    stream: Stream[int] = Stream("numbers")
    evens = stream.subscribe(name="evens", maxsize=2, accept=lambda n: n % 2 == 0)
    for number in range(10):
        stream.publish(number)  # synchronous: a full reader costs the publisher nothing
    assert evens.drain() == [6, 8] and evens.dropped == 3
    stream.publish(10)
    evens.close()
    assert [n async for n in evens] == [10]
    assert stream.subscribers == [] and stream.stats()["published"] == 11
