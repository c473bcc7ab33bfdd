"""/ws/events/ through the real ASGI stack and the running pipeline (bus, store, forwarder, channel layer)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from pipeline.running import publish
from pipeline.stores import event_store

pytestmark = pytest.mark.django_db(transaction=True)


def quote(exchange: str, bid: float) -> dict:
    return {"exchange": exchange, "symbol": "BTC-USD", "bid": bid, "ask": bid + 1, "last": bid, "size": 1.0}


async def wait_until_kept(stream: str, seq: int) -> None:
    def kept() -> int:
        store = event_store()
        try:
            return store.last_seq(stream) if hasattr(store, "last_seq") else 0
        finally:
            store.close()

    async with asyncio.timeout(10):
        while await sync_to_async(kept)() < seq:  # noqa: ASYNC110 - the history is in another thread's database
            await asyncio.sleep(0.02)


async def test_anonymous_and_roleless_users_are_refused(running_pipeline, browser_for, django_user_model):
    anonymous = await browser_for(None)
    assert not await anonymous.connect()
    nobody = await sync_to_async(django_user_model.objects.create_user)("nobody", password="x" * 12)
    roleless = await browser_for(nobody)
    assert not await roleless.connect()


async def test_bad_messages_get_an_error_frame_and_the_socket_stays_usable(running_pipeline, browser_for, viewer_user):
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    bad = [
        ("not json", "not JSON"),
        ([1, 2], "JSON object"),
        ({"type": "dance"}, "'type'"),
        ({"type": "subscribe"}, "'streams'"),
        ({"type": "subscribe", "streams": "quotes.*"}, "'streams'"),
        ({"type": "subscribe", "streams": ["quotes. bad"]}, "'streams'"),
        ({"type": "subscribe", "streams": ["quotes.*"], "servers": [1]}, "'servers'"),
        ({"type": "subscribe", "streams": ["quotes.*"], "after": {"quotes.X": -1}}, "'after.quotes.X'"),
        ({"type": "subscribe", "streams": ["quotes.*"], "after": {"spreads.X": 1}}, "'after.spreads.X'"),
        ({"type": "unsubscribe"}, "'streams'"),
    ]
    for message, named in bad:
        await browser.send(message)
        frame = await browser.expect("error")
        assert named in frame["message"], (message, frame)

    await browser.send({"type": "subscribe", "streams": ["quotes.*"]})
    assert (await browser.expect("subscribed"))["streams"] == ["quotes.*"]
    publish("quotes.BTC-USD", "quote", quote("alpha", 100.0), server="exchange-alpha")
    events = await browser.events_until(lambda e: e["stream"] == "quotes.BTC-USD")
    assert events[-1]["payload"]["bid"] == 100.0
    await browser.close()


async def test_filters_batches_and_unsubscribe(running_pipeline, browser_for, viewer_user):
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["quotes.*", "fleet.status"], "servers": ["exchange-alpha"]})
    await browser.expect("subscribed")
    for i in range(60):
        publish("quotes.BTC-USD", "quote", quote("alpha", 100.0 + i), server="exchange-alpha")
        publish("quotes.BTC-USD", "quote", quote("beta", 200.0 + i), server="exchange-beta")
        publish("spreads.BTC-USD", "spread", {"symbol": "BTC-USD"})
    publish("fleet.status", "status", {"server": "exchange-alpha", "status": "online"}, server="exchange-alpha")

    events = await browser.events_until(lambda e: e["stream"] == "fleet.status")
    quotes = [e for e in events if e["stream"] == "quotes.BTC-USD"]
    assert {e["server"] for e in events} == {"exchange-alpha"}
    assert [e["payload"]["bid"] for e in quotes] == [100.0 + i for i in range(60)]
    # Every event of a stream has its own sequence number; beta's events took the numbers in between.
    assert [e["seq"] for e in quotes] == list(range(1, 120, 2))
    batches = [f for f in browser.frames if f["type"] == "batch"]
    assert len(batches) < len(events)  # batched, not a frame per event
    assert not [f for f in browser.frames if f["type"] == "gap"]  # filtered out is not missed

    await browser.send({"type": "unsubscribe", "streams": ["quotes.*"]})
    publish("quotes.BTC-USD", "quote", quote("alpha", 1.0), server="exchange-alpha")
    publish("fleet.status", "status", {"server": "exchange-alpha", "status": "offline"}, server="exchange-alpha")
    later = await browser.events_until(lambda e: e["stream"] == "fleet.status")
    assert [e["stream"] for e in later] == ["fleet.status"]
    await browser.close()


async def test_a_browser_that_resumes_gets_exactly_what_it_missed(running_pipeline, browser_for, viewer_user):
    first = await browser_for(viewer_user)
    assert await first.connect()
    await first.send({"type": "subscribe", "streams": ["quotes.*"]})
    await first.expect("subscribed")
    for i in range(5):
        publish("quotes.ETH-USD", "quote", quote("alpha", 10.0 + i), server="exchange-alpha")
    seen = await first.events_until(lambda e: e["seq"] == 5)
    last_seen = seen[1]["seq"]  # pretend the connection broke after the second event
    await first.close()

    for i in range(5, 8):  # published while the browser was away
        publish("quotes.ETH-USD", "quote", quote("alpha", 10.0 + i), server="exchange-alpha")
    await wait_until_kept("quotes.ETH-USD", 8)

    again = await browser_for(viewer_user)
    assert await again.connect()
    await again.send({"type": "subscribe", "streams": ["quotes.*"], "after": {"quotes.ETH-USD": last_seen}})
    await again.expect("subscribed")
    publish("quotes.ETH-USD", "quote", quote("alpha", 99.0), server="exchange-alpha")  # live, after the replay
    events = await again.events_until(lambda e: e["seq"] == 9)
    assert [e["seq"] for e in events] == [3, 4, 5, 6, 7, 8, 9]
    assert not [f for f in again.frames if f["type"] == "gap"]
    await again.close()


async def test_a_resume_from_before_retention_is_told_of_the_gap(running_pipeline, browser_for, viewer_user):
    for i in range(6):
        publish("quotes.SOL-USD", "quote", quote("alpha", 1.0 + i), server="exchange-alpha")
    await wait_until_kept("quotes.SOL-USD", 6)

    def prune() -> int:
        store = event_store()
        try:
            return store.prune(max_age_seconds=3600, max_per_stream=2)
        finally:
            store.close()

    assert await sync_to_async(prune)() >= 4
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["quotes.SOL-USD"], "after": {"quotes.SOL-USD": 1}})
    await browser.expect("subscribed")
    assert await browser.receive() == {"type": "gap", "stream": "quotes.SOL-USD", "missed": 3}
    replayed = await browser.expect("batch")
    assert [e["seq"] for e in replayed["events"]] == [5, 6]
    await browser.close()


async def test_a_paused_browser_keeps_a_bounded_buffer_and_hears_of_the_gap_without_slowing_others(
    running_pipeline, browser_for, viewer_user, settings
):
    settings.PIPELINE_SOCKET_BUFFER = 5
    paused = await browser_for(viewer_user)
    steady = await browser_for(viewer_user)
    for browser in (paused, steady):
        assert await browser.connect()
        await browser.send({"type": "subscribe", "streams": ["quotes.*"]})
        await browser.expect("subscribed")
    await paused.send({"type": "pause"})
    await paused.expect("paused")
    for i in range(40):
        publish("quotes.ADA-USD", "quote", quote("alpha", 1.0 + i), server="exchange-alpha")

    received = await steady.events_until(lambda e: e["seq"] == 40)
    assert [e["seq"] for e in received] == list(range(1, 41))

    await paused.send({"type": "continue"})
    assert await paused.receive() == {"type": "gap", "stream": "quotes.ADA-USD", "missed": 35}
    batch = await paused.expect("batch")
    assert [e["seq"] for e in batch["events"]] == [36, 37, 38, 39, 40]
    await paused.close()
    await steady.close()
