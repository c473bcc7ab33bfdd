"""Callers that find a cache entry missing together share one load (registry/shared_loads.py)."""

from __future__ import annotations

import asyncio

import pytest

from registry.shared_loads import SharedLoads


async def test_callers_arriving_together_share_one_load():
    loads = SharedLoads[str, int]()
    started = 0
    release = asyncio.Event()

    async def load() -> int:
        nonlocal started
        started += 1
        await release.wait()
        return 42

    waiters = [asyncio.ensure_future(loads.load("alpha", load)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [42] * 20
    assert started == 1


async def test_other_keys_load_on_their_own_and_a_later_caller_loads_again():
    loads = SharedLoads[str, str]()
    calls: list[str] = []

    async def load_of(key: str) -> str:
        calls.append(key)
        await asyncio.sleep(0)
        return key.upper()

    assert await asyncio.gather(loads.load("a", lambda: load_of("a")), loads.load("b", lambda: load_of("b"))) == [
        "A",
        "B",
    ]
    assert await loads.load("a", lambda: load_of("a")) == "A"
    assert calls == ["a", "b", "a"]


async def test_a_failed_load_fails_its_caller_and_the_others_load_again():
    loads = SharedLoads[str, int]()
    attempts = 0
    release = asyncio.Event()

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await release.wait()
            raise ConnectionError("database gone")
        return 7

    first = asyncio.ensure_future(loads.load("k", flaky))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(loads.load("k", flaky))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(ConnectionError):
        await first
    assert await second == 7
    assert attempts == 2


async def test_a_waiter_cancelled_leaves_the_load_to_the_others():
    loads = SharedLoads[str, int]()
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 5

    first = asyncio.ensure_future(loads.load("k", slow))
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(loads.load("k", slow))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    assert await first == 5
