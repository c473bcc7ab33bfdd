"""Event history in both stores (the database; Redis Streams), its retention, the replay API, and Redis sequence
numbers shared by several processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from rest_framework.test import APIClient

from pipeline.bus import EventBus
from pipeline.events import iso_time
from pipeline.stores import DatabaseEventStore, RedisEventStore, event_store

pytestmark = pytest.mark.django_db(transaction=True)

HERE = Path(__file__).parent


@pytest.fixture
def redis_url(settings) -> str:
    import redis

    url = settings.REDIS_URL or "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    if not settings.REDIS_URL:
        settings.REDIS_URL = url
    return url


@pytest.fixture(params=["database", "redis"])
def store(request, settings):
    if request.param == "redis":
        request.getfixturevalue("redis_url")
        made = RedisEventStore()
    else:
        made = DatabaseEventStore()
    yield made
    made.close()


async def publish_through(store, stream: str, count: int) -> list:
    """Through a real bus with the store as its sequencer, then kept, as the forwarder does."""
    bus = EventBus(sequencer=store.sequencer())
    await bus.start()
    reader = bus.subscribe(["*"], name="reader")
    for i in range(count):
        bus.publish(stream, "tick", {"i": i}, server="alpha", at=1_700_000_000.0 + i)
    events: list = []
    while len(events) < count:
        events.extend(await reader.next_batch())
    await store.persist(events)
    await bus.stop()
    if isinstance(store, RedisEventStore):
        await store.aclose()
    return events


async def test_history_reads_in_order_after_a_number_or_a_time_and_keeps_retention(store):
    events = await publish_through(store, "quotes.BTC-USD", 10)
    assert [e.seq for e in events] == list(range(1, 11))

    page = await sync_to_async(store.read)("quotes.BTC-USD", after=3, limit=4)
    assert [(e.seq, e.payload["i"], e.server, e.kind) for e in page.events] == [
        (4, 3, "alpha", "tick"),
        (5, 4, "alpha", "tick"),
        (6, 5, "alpha", "tick"),
        (7, 6, "alpha", "tick"),
    ]
    assert (page.missed, page.first_seq, page.last_seq) == (0, 1, 10)
    since = datetime.fromtimestamp(1_700_000_000.0 + 7, UTC)
    assert [e.seq for e in (await sync_to_async(store.read)("quotes.BTC-USD", since=since)).events] == [8, 9, 10]

    assert await sync_to_async(store.prune)(max_age_seconds=10**9, max_per_stream=3) == 7
    after_prune = await sync_to_async(store.read)("quotes.BTC-USD", after=2)
    assert [e.seq for e in after_prune.events] == [8, 9, 10] and after_prune.missed == 5
    # Old by age: everything before "now - max age" goes (the database keeps a stream's newest event: its number
    # is where the numbering goes on after a restart; Redis keeps the number in a key of its own).
    pruned = await sync_to_async(store.prune)(max_age_seconds=1, max_per_stream=100)
    left = [e.seq for e in (await sync_to_async(store.read)("quotes.BTC-USD")).events]
    assert (pruned, left) == ((2, [10]) if isinstance(store, DatabaseEventStore) else (3, []))
    again = await publish_through(store, "quotes.BTC-USD", 1)
    assert [e.seq for e in again] == [11]


async def test_sequence_numbers_continue_after_a_restart(store):
    await publish_through(store, "fleet.status", 3)
    again = await publish_through(store, "fleet.status", 2)
    assert [e.seq for e in again] == [4, 5]


def test_the_history_api_answers_in_order_and_names_bad_fields(viewer_user, settings):
    # Through the store this configuration uses (the database, or Redis with REDIS_URL), as the pipeline keeps them.
    store = event_store()
    try:
        async_to_sync(publish_through)(store, "spreads.BTC-USD", 3)
    finally:
        store.close()
    client = APIClient()
    assert client.get("/api/events/?stream=spreads.BTC-USD").status_code in (401, 403)
    client.force_authenticate(viewer_user)
    body = client.get("/api/events/?stream=spreads.BTC-USD&after=1&limit=5").json()
    assert [(e["stream"], e["seq"], e["kind"], e["payload"]) for e in body["results"]] == [
        ("spreads.BTC-USD", 2, "tick", {"i": 1}),
        ("spreads.BTC-USD", 3, "tick", {"i": 2}),
    ]
    assert set(body["results"][0]) == {"stream", "seq", "kind", "server", "at", "payload"}
    assert body["next_after"] == 3 and body["missed"] == 0
    since = iso_time(time.time() + 60)
    assert client.get(f"/api/events/?stream=spreads.BTC-USD&since={since}").json()["results"] == []
    for query, field in [
        ("", "stream"),
        ("?stream=a%20b", "stream"),
        ("?stream=x&after=-1", "after"),
        ("?stream=x&limit=0", "limit"),
        ("?stream=x&limit=5000", "limit"),
        ("?stream=x&since=yesterday", "since"),
    ]:
        response = client.get(f"/api/events/{query}")
        assert response.status_code == 400 and field in response.json(), (query, response.content)


def test_two_processes_publishing_to_one_stream_never_repeat_a_number(redis_url, settings, tmp_path):
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PIPELINE_REDIS_PREFIX": settings.PIPELINE_REDIS_PREFIX,
        "DEBUG": "1",
        "ORCHESTRATOR_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "orchestrator_site.settings",
    }
    command = [sys.executable, str(HERE / "publish_elsewhere.py"), "sequence", "quotes.BTC-USD", "1000"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    first, second = (json.loads(output.strip().splitlines()[-1]) for output in outputs)
    assert not set(first) & set(second)
    assert sorted(first + second) == list(range(1, 2_001))
    assert first == sorted(first) and second == sorted(second)
    kept = RedisEventStore()
    try:
        seqs = [e.seq for e in kept.read("quotes.BTC-USD", after=0, limit=1_000).events]
        seqs += [e.seq for e in kept.read("quotes.BTC-USD", after=1_000, limit=1_000).events]
    finally:
        kept.close()
    assert seqs == list(range(1, 2_001))


def test_a_poll_configuration_is_checked_where_every_definition_is(operator_api):
    good = {"tool": "get_quote", "arguments": {"symbol": "BTC-USD"}, "interval_seconds": 2, "stream": "quotes.BTC-USD"}
    created = operator_api.post(
        "/api/servers/",
        {"name": "polled", "transport": "http", "url": "http://127.0.0.1:9/mcp", "metadata": {"poll": good}},
        format="json",
    )
    assert created.status_code == 201, created.content
    for poll, said in [
        ("every second", "poll must be an object"),
        ({"arguments": {}}, "poll.tool"),
        ({"tool": "t", "interval_seconds": 0}, "poll.interval_seconds"),
        ({"tool": "t", "stream": "not a stream"}, "poll.stream"),
        ({"tool": "t", "every": 3}, "unknown keys"),
    ]:
        response = operator_api.patch("/api/servers/polled/", {"metadata": {"poll": poll}}, format="json")
        assert response.status_code == 400 and said in response.json()["metadata"][0], (poll, response.content)
