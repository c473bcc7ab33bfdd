"""Session streams: what a demo exchange announces reaches every subscriber; a slow one loses only its own items."""

from __future__ import annotations

import sys

from mcp_client import ConnectionHub, ServerTarget

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
