"""Leading-edge batching on the way to /ws/events/: an event on an idle path goes at once, a busy path still batches.

The window (the socket's PIPELINE_SOCKET_BATCH_SECONDS, the forwarder's linger) is made long (seconds) so that a
delay it causes cannot hide in the machine's load: a lone event that waited for it would take at least that long, and
one that did not takes a small part of it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.layers import get_channel_layer

from pipeline.delivery import EVENTS_GROUP
from pipeline.events import Event
from pipeline.forwarding import Forwarder
from pipeline.running import publish

from .test_bus import started_bus
from .test_events_socket import quote, wait_until_kept

WINDOW_SECONDS = 2.0


class KeptInMemory:
    """The forwarder's store, reduced to what it asks of one: keep a batch."""

    def __init__(self) -> None:
        self.kept: list[Event] = []

    async def persist(self, events: list[Event]) -> None:
        self.kept.extend(events)


async def test_the_forwarder_hands_a_lone_event_over_at_once_and_lingers_only_right_after_a_hand_over():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(EVENTS_GROUP, channel)
    bus = await started_bus()
    forwarder = Forwarder(bus, KeptInMemory(), linger_seconds=WINDOW_SECONDS)
    forwarder.start()

    async def handed_over() -> list[int]:
        message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), WINDOW_SECONDS * 5)
        return [wire[1] for wire in message["events"]]

    try:
        published = time.monotonic()
        bus.publish("fleet.status", "status", {"server": "exchange-alpha", "status": "offline"})
        assert await handed_over() == [1]
        first_at = time.monotonic()
        # Lingering, it would have taken at least WINDOW_SECONDS.
        assert first_at - published < WINDOW_SECONDS / 2, first_at - published

        for _ in range(2):
            bus.publish("fleet.status", "status", {"server": "exchange-alpha", "status": "online"})
        assert await handed_over() == [2, 3]
        # Right after a hand-over (load), the next batch lingered until the window since it was over.
        assert time.monotonic() - first_at >= WINDOW_SECONDS / 2
    finally:
        await forwarder.stop()
        await bus.stop()
        await layer.group_discard(EVENTS_GROUP, channel)


@pytest.mark.django_db(transaction=True)
async def test_a_lone_event_on_an_idle_socket_goes_out_without_waiting_the_window(
    running_pipeline, browser_for, viewer_user, settings
):
    settings.PIPELINE_SOCKET_BATCH_SECONDS = WINDOW_SECONDS
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["fleet.status"]})
    await browser.expect("subscribed")

    published = time.monotonic()
    publish("fleet.status", "status", {"server": "exchange-alpha", "status": "offline"}, server="exchange-alpha")
    frame = await browser.expect("batch")
    delay = time.monotonic() - published
    assert [e["payload"]["status"] for e in frame["events"]] == ["offline"]
    # Held for the socket's window, it would have taken at least WINDOW_SECONDS.
    assert delay < WINDOW_SECONDS / 2, delay
    await browser.close()


@pytest.mark.django_db(transaction=True)
async def test_events_right_after_a_frame_wait_for_the_window_and_go_as_one_frame(
    running_pipeline, browser_for, viewer_user, settings
):
    settings.PIPELINE_SOCKET_BATCH_SECONDS = WINDOW_SECONDS
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["quotes.*"]})
    await browser.expect("subscribed")

    publish("quotes.BTC-USD", "quote", quote("alpha", 1.0), server="exchange-alpha")
    first = await browser.expect("batch")
    first_at = time.monotonic()
    assert [e["seq"] for e in first["events"]] == [1]
    # Two more, each handed to the sockets on its own (kept, hence handed over, before the next is published).
    for seq in (2, 3):
        publish("quotes.BTC-USD", "quote", quote("alpha", float(seq)), server="exchange-alpha")
        await wait_until_kept("quotes.BTC-USD", seq)
    second = await browser.expect("batch", within=WINDOW_SECONDS * 5)
    assert [e["seq"] for e in second["events"]] == [2, 3]
    # Held until the window since the first frame was over (the first frame left before this test received it).
    assert time.monotonic() - first_at >= WINDOW_SECONDS / 2
    await browser.close()
