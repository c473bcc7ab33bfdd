"""A browser that goes away while the socket flushes: an expected end, handled, not "Task exception was never
retrieved ... Disconnected" (what daphne's send raises once the peer is gone) logged from the timed flush."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
from autobahn.exception import Disconnected

from pipeline.consumers import OPEN_SOCKETS, EventsConsumer
from pipeline.running import publish

pytestmark = pytest.mark.django_db(transaction=True)


def quote(bid: float) -> dict[str, Any]:
    return {"exchange": "alpha", "symbol": "BTC-USD", "bid": bid, "ask": bid + 1, "last": bid, "size": 1.0}


async def wait_for_true(check: Any, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the consumer's state has no event to wait on
            await asyncio.sleep(0.01)


async def test_a_browser_gone_during_a_timed_flush_ends_quietly(
    running_pipeline, browser_for, viewer_user, settings, monkeypatch, caplog
):
    # A long batching window, so the second event surely waits for the timer (the path that raised unretrieved).
    settings.PIPELINE_SOCKET_BATCH_SECONDS = 1.5
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))

    real_send = EventsConsumer.send
    gone: set[int] = set()

    async def send_like_daphne(self: EventsConsumer, *args: Any, **kwargs: Any) -> None:
        if id(self) in gone:  # what autobahn raises for a send on a closed protocol
            raise Disconnected("Attempt to send on a closed protocol")
        await real_send(self, *args, **kwargs)

    monkeypatch.setattr(EventsConsumer, "send", send_like_daphne)
    caplog.set_level(logging.DEBUG, logger="pipeline.consumers")
    try:
        browser = await browser_for(viewer_user)
        assert await browser.connect()
        await browser.send({"type": "subscribe", "streams": ["quotes.*"]})
        await browser.expect("subscribed")
        publish("quotes.BTC-USD", "quote", quote(100.0))
        await browser.events_until(lambda event: event["payload"]["bid"] == 100.0)  # the first frame: at once
        consumer = next(iter(OPEN_SOCKETS))
        gone.add(id(consumer))  # the tab closes; the server does not know yet

        publish("quotes.BTC-USD", "quote", quote(101.0))
        await wait_for_true(lambda: consumer.flush_timer is not None or consumer.gone)
        assert consumer.flush_timer is not None, "the second event should wait for the batching window"
        await wait_for_true(lambda: consumer.gone and consumer.flush_task is None)

        # Later events find the socket gone: nothing is sent, nothing raised.
        publish("quotes.BTC-USD", "quote", quote(102.0))
        await wait_for_true(lambda: not consumer.outbox)
        gc.collect()  # an unretrieved task exception is reported when the task is collected
        await asyncio.sleep(0)
        await browser.close()
    finally:
        loop.set_exception_handler(previous_handler)

    assert unhandled == []
    errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert errors == [], [record.getMessage() for record in errors]
    assert any("went away" in record.getMessage() and record.levelno == logging.DEBUG for record in caplog.records)


async def test_an_unexpected_error_in_a_timed_flush_is_logged_not_lost(
    running_pipeline, browser_for, viewer_user, settings, monkeypatch, caplog
):
    settings.PIPELINE_SOCKET_BATCH_SECONDS = 1.5
    real_send = EventsConsumer.send
    broken: set[int] = set()

    async def send_that_breaks(self: EventsConsumer, *args: Any, **kwargs: Any) -> None:
        if id(self) in broken:
            raise ValueError("a bug, not a disconnect")
        await real_send(self, *args, **kwargs)

    monkeypatch.setattr(EventsConsumer, "send", send_that_breaks)
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["quotes.*"]})
    await browser.expect("subscribed")
    publish("quotes.BTC-USD", "quote", quote(100.0))
    await browser.events_until(lambda event: event["payload"]["bid"] == 100.0)
    consumer = next(iter(OPEN_SOCKETS))
    broken.add(id(consumer))
    publish("quotes.BTC-USD", "quote", quote(101.0))
    await wait_for_true(lambda: any("timed flush failed" in r.getMessage() for r in caplog.records))
    assert not consumer.gone  # a bug is not taken for a closed tab
    record = next(r for r in caplog.records if "timed flush failed" in r.getMessage())
    assert record.levelno == logging.ERROR and "a bug, not a disconnect" in str(record.exc_info[1])
    broken.clear()
    await browser.close()
