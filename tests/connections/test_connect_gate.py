"""The connect gate: a storm of connects goes through a few at a time, a server that never answers its handshake
cannot hold the others up, and a connection stopped while it waits for a slot stops at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from exchange_fleet.launcher import free_port, start_http_exchange_fleet, stop_process
from mcp_client import ConnectionHub, ServerTarget

from .conftest import FAST_BACKOFF
from .helpers import await_until


@pytest.fixture(scope="module")
def exchange_urls() -> Iterator[list[str]]:
    process, urls = start_http_exchange_fleet(8, free_port(), "--tick-interval", "60", "--no-outages")
    yield urls
    stop_process(process)


@pytest.fixture
async def black_hole() -> AsyncIterator[str]:
    """An address that accepts TCP connections and never answers a byte (a hung server, a stuck proxy)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/mcp"
    for writer in held:
        writer.close()
    server.close()


def http_target(key: str, url: str, connect_timeout: float = 20.0) -> ServerTarget:
    return ServerTarget(key=key, transport="http", url=url, connect_timeout=connect_timeout, request_timeout=10.0)


async def test_a_storm_of_connects_goes_through_a_few_at_a_time(exchange_urls: list[str]) -> None:
    hub = ConnectionHub(backoff=FAST_BACKOFF, connects_at_once=2, connect_slot_seconds=30.0)
    try:
        targets = [http_target(f"x{index}", url) for index, url in enumerate(exchange_urls)]
        for target in targets:
            await hub.ensure(target)
        gate = hub.connect_gate
        assert gate is not None
        statuses = await asyncio.gather(*(hub.wait_connected(target.key, 30) for target in targets))
        assert all(status.state == "connected" for status in statuses)
        assert gate.most_held == 2 and gate.held == 0 and gate.waiting == 0
        assert (await hub.probe("x7")).result > 0  # and every session works once connected
    finally:
        await hub.close_all()


async def test_a_server_that_never_answers_holds_its_slot_only_so_long(
    exchange_urls: list[str], black_hole: str
) -> None:
    hub = ConnectionHub(backoff=FAST_BACKOFF, connects_at_once=1, connect_slot_seconds=0.5)
    try:
        await hub.ensure(http_target("hung", black_hole, connect_timeout=60.0))
        started = time.monotonic()
        await hub.ensure(http_target("fine", exchange_urls[0]))
        status = await hub.wait_connected("fine", 20)
        assert status.state == "connected"
        # Within a few seconds, long before the hung server's own 60 s connect timeout ends its attempt.
        assert time.monotonic() - started < 15
        assert hub.statuses()["hung"].state == "connecting"
    finally:
        await hub.close_all()


async def test_a_connection_stopped_while_it_waits_for_a_slot_stops_at_once(black_hole: str) -> None:
    hub = ConnectionHub(backoff=FAST_BACKOFF, connects_at_once=1, connect_slot_seconds=60.0)
    try:
        await hub.ensure(http_target("hung", black_hole, connect_timeout=60.0))
        await hub.ensure(http_target("queued", black_hole, connect_timeout=60.0))
        gate = hub.connect_gate
        assert gate is not None
        assert await await_until(lambda: gate.waiting == 1)  # the second connection queues behind the first
        started = time.monotonic()
        assert await hub.remove("queued")
        assert time.monotonic() - started < 2  # not the stop timeout, not the slot's 60 s
        assert gate.waiting == 0 and "queued" not in hub.statuses()
    finally:
        await hub.close_all()
