"""The whole path over the real protocol: an MCP server's resource update -> producer -> bus -> processor ->
forwarder -> channel layer -> /ws/events/ -> a browser; producers that outlive their server's death; and, with
Redis, an event published in one process reaching a browser connected to another."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings

from pipeline.delivery import bind_delivery_loop
from pipeline.running import live_pipeline
from registry.services import server_create

pytestmark = pytest.mark.django_db(transaction=True)

HERE = Path(__file__).parent
TEST_SERVERS = HERE.parent / "mcp_servers"


def register_exchange(name: str, profile: str) -> None:
    server_create(
        name=name,
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", profile],
        cwd=str(django_settings.BASE_DIR),
    )


@pytest.fixture
async def pipeline_with_producers(live_fleet):
    """The live fleet's pipeline (its producers refreshed every 0.3 s), delivering to sockets on this test's loop."""
    bind_delivery_loop(asyncio.get_running_loop())
    yield live_fleet.pipeline
    bind_delivery_loop(None)


async def test_a_demo_exchange_price_change_reaches_a_browser_with_spreads(
    pipeline_with_producers, live_fleet, browser_for, viewer_user
):
    await sync_to_async(register_exchange)("exchange-alpha", "alpha")
    await sync_to_async(register_exchange)("exchange-beta", "beta")
    live_fleet.request_reconcile()
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["quotes.*", "spreads.BTC-USD"]})
    await browser.expect("subscribed")

    def quote_from(server: str):
        return lambda e: e["stream"] == "quotes.BTC-USD" and e["server"] == server

    events = await browser.events_until(quote_from("exchange-alpha"), within=30)
    quote = events[-1]["payload"]
    assert quote["exchange"] == "alpha" and quote["symbol"] == "BTC-USD"
    assert quote["bid"] < quote["ask"] and quote["last"] > 0 and quote["size"] > 0 and quote["time"]
    await browser.events_until(quote_from("exchange-beta"), within=30)
    spreads = await browser.events_until(
        lambda e: e["stream"] == "spreads.BTC-USD" and e["payload"]["exchanges"] == 2, within=30
    )
    spread = spreads[-1]["payload"]
    assert spread["best_bid_exchange"] in {"alpha", "beta"} and spread["best_ask_exchange"] in {"alpha", "beta"}
    assert spread["spread"] == pytest.approx(spread["best_ask"] - spread["best_bid"])
    assert spread["crossed"] is (spread["best_bid"] > spread["best_ask"])
    stats = live_pipeline().stats()
    spreads_stats = next(p for p in stats["processors"] if p["name"] == "spreads")
    assert spreads_stats["events_in"] > 0 and spreads_stats["events_out"] > 0 and spreads_stats["errors"] == 0
    await browser.close()


async def test_a_producer_whose_server_dies_starts_again_when_it_comes_back(
    pipeline_with_producers, live_fleet, browser_for, viewer_user
):
    await sync_to_async(register_exchange)("exchange-alpha", "alpha")
    live_fleet.request_reconcile()
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["quotes.ETH-USD"], "servers": ["exchange-alpha"]})
    await browser.expect("subscribed")
    await browser.events_until(lambda e: True, within=30)

    pid = live_fleet.hub.statuses()["exchange-alpha"].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    # Quotes flow again from the new process: the producer subscribed and read again on the new session.
    await browser.events_until(lambda e: time.time() > killed_at and e["payload"]["time"] and _after(e, killed_at), 40)
    assert live_fleet.hub.statuses()["exchange-alpha"].pid != pid
    await browser.close()


def _after(event: dict, moment: float) -> bool:
    from datetime import datetime

    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp() > moment + 0.5


async def test_a_legacy_era_server_resource_updates_become_events(
    pipeline_with_producers, live_fleet, browser_for, viewer_user
):
    await sync_to_async(server_create)(
        name="legacy-ticker",
        transport="stdio",
        command=sys.executable,
        args=[str(TEST_SERVERS / "garbage.py"), "--mode", "noise", "--ticker"],
    )
    live_fleet.request_reconcile()
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["resources.*"]})
    await browser.expect("subscribed")
    first = await browser.events_until(lambda e: e["server"] == "legacy-ticker", within=30)
    assert first[-1]["stream"] == "resources.legacy-ticker" and first[-1]["payload"]["uri"] == "test://ticker"

    from fleet import calls as fleet_calls

    async def call_until_counted() -> list[dict]:
        for _ in range(3):
            await fleet_calls.call_tool("legacy-ticker", "echo", {"text": "tick"})
        return await browser.events_until(lambda e: e["payload"].get("json", {}).get("calls", 0) >= 3, within=30)

    counted = await call_until_counted()
    assert counted[-1]["kind"] == "resource.updated"
    await browser.close()


async def test_an_event_published_in_another_process_reaches_a_browser_here(
    transactional_db, browser_for, viewer_user, settings, tmp_path
):
    import redis

    url = settings.REDIS_URL or "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    from channels.layers import channel_layers

    from orchestrator_site.settings import redis_channel_layer

    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(url)}
    channel_layers.backends.clear()
    try:
        browser = await browser_for(viewer_user)
        assert await browser.connect()
        await browser.send({"type": "subscribe", "streams": ["quotes.ELSEWHERE"]})
        await browser.expect("subscribed")
        env = {
            **os.environ,
            "REDIS_URL": url,
            "PIPELINE_REDIS_PREFIX": settings.PIPELINE_REDIS_PREFIX,
            "DEBUG": "1",
            "ORCHESTRATOR_VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
        }
        command = [sys.executable, str(HERE / "publish_elsewhere.py"), "pipeline", "quotes.ELSEWHERE", "3"]
        done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        events = await browser.events_until(lambda e: e["seq"] == 3, within=20)
        assert [(e["seq"], e["server"], e["payload"]["i"]) for e in events] == [
            (1, "elsewhere", 0),
            (2, "elsewhere", 1),
            (3, "elsewhere", 2),
        ]
        assert {e["payload"]["pid"] for e in events} != {os.getpid()}
        await browser.close()
    finally:
        channel_layers.backends.clear()


async def test_a_polled_tool_becomes_events_at_its_interval(
    pipeline_with_producers, live_fleet, browser_for, viewer_user
):
    poll = {"tool": "get_quote", "arguments": {"symbol": "SOL-USD"}, "interval_seconds": 0.5, "stream": "polled.SOL"}
    await sync_to_async(server_create)(
        name="polled-alpha",
        transport="stdio",
        command=sys.executable,
        args=["-m", "exchange_fleet", "serve", "--profile", "alpha"],
        cwd=str(django_settings.BASE_DIR),
        metadata={"poll": poll},
    )
    live_fleet.request_reconcile()
    browser = await browser_for(viewer_user)
    assert await browser.connect()
    await browser.send({"type": "subscribe", "streams": ["polled.*"]})
    await browser.expect("subscribed")
    events = await browser.events_until(lambda e: e["seq"] >= 2, within=30)
    assert [e["kind"] for e in events] == ["poll"] * len(events)
    answer = events[-1]["payload"]
    assert answer["tool"] == "get_quote" and answer["result"]["symbol"] == "SOL-USD" and answer["result"]["bid"] > 0
    await browser.close()
