"""The Redis channel layer as the settings build it: a consumer may wait on a quiet channel for longer than one
blocking read without its reads failing (a WebSocket on a quiet stream must not die)."""

from __future__ import annotations

import asyncio

import pytest
from channels_redis.core import RedisChannelLayer

from orchestrator_site.settings import redis_channel_layer


@pytest.fixture
def redis_url() -> str:
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return url


async def test_a_receive_outlasts_a_quiet_blocking_read_and_then_gets_the_message(redis_url):
    layer = RedisChannelLayer(**redis_channel_layer(redis_url)["CONFIG"])
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    # One blocking read (BZPOPMIN) lasts brpop_timeout; past it the receive must still be waiting, not failed.
    await asyncio.wait({receiving}, timeout=layer.brpop_timeout + 1.5)
    assert not receiving.done(), receiving.exception()
    await layer.send(channel, {"type": "pipeline.batch", "events": []})
    assert (await asyncio.wait_for(receiving, 10))["type"] == "pipeline.batch"
    await layer.flush()
