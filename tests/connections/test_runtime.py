"""FleetRuntime: the live sessions used from plain sync code, from another event loop, and shut down
without leaving processes behind (explicitly, and via atexit at interpreter exit)."""

from __future__ import annotations

import asyncio
import subprocess
import textwrap
import threading
import time

import pytest

from mcp_client import CallOutcome, ConnectionHub, FleetRuntime

from .conftest import FAST_BACKOFF
from .helpers import PYTHON, REPO, marked_pids, stdio_target, wait_until


def test_runtime_from_sync_code(marker: str) -> None:
    threads: set[str] = set()

    def record(outcome: CallOutcome) -> bool:
        threads.add(threading.current_thread().name)
        return True

    hub = ConnectionHub(backoff=FAST_BACKOFF)
    outcomes = hub.streams.outcomes.subscribe(name="test", accept=record)
    runtime = FleetRuntime(hub).start()
    try:
        target = stdio_target("sync", "garbage", marker, "--mode", "noise")
        runtime.run(runtime.hub.ensure(target))
        status = runtime.run(lambda hub: hub.wait_connected("sync", 10), timeout=15)  # callable form
        assert status.connected and status.pid in marked_pids(marker)
        answer = runtime.run(runtime.hub.call_tool("sync", "echo", {"text": "from sync"}), timeout=5)
        assert answer.result.text == "from sync" and answer.outcome.ok
        assert runtime.hub.statuses()["sync"].state == "connected"
        assert threads == {"mcp-fleet"} and outcomes.drain()[-1] == answer.outcome

        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            runtime.run(asyncio.sleep(10), timeout=0.2)
        assert time.perf_counter() - started < 1.0
    finally:
        runtime.shutdown()
    assert marked_pids(marker) == []
    assert not runtime.started
    runtime.shutdown()  # idempotent
    with pytest.raises(RuntimeError):
        runtime.run(asyncio.sleep(0))


async def test_runtime_from_another_event_loop(marker: str) -> None:
    runtime = FleetRuntime(ConnectionHub(backoff=FAST_BACKOFF)).start()
    try:
        await runtime.arun(runtime.hub.ensure(stdio_target("a", "garbage", marker, "--mode", "noise")))
        await runtime.arun(lambda hub: hub.wait_connected("a", 10))
        results = await asyncio.gather(
            *(runtime.arun(runtime.hub.call_tool("a", "echo", {"text": str(i)})) for i in range(20))
        )
        assert [r.result.text for r in results] == [str(i) for i in range(20)]
        # The hub is bound to the fleet loop: direct use from this loop is refused loudly.
        with pytest.raises(RuntimeError, match="another event loop"):
            await runtime.hub.call_tool("a", "echo", {"text": "wrong loop"})

        # On the fleet loop itself, arun() just awaits and run() refuses (it would deadlock).
        async def on_fleet_loop() -> str:
            inner = await runtime.arun(runtime.hub.call_tool("a", "echo", {"text": "inner"}))
            with pytest.raises(RuntimeError, match="deadlock"):
                runtime.run(asyncio.sleep(0))
            return inner.result.text

        assert await runtime.arun(on_fleet_loop()) == "inner"
    finally:
        await asyncio.to_thread(runtime.shutdown)
    assert marked_pids(marker) == []


def test_a_shut_down_runtime_cannot_be_restarted_and_leaves_no_children(marker: str) -> None:
    runtime = FleetRuntime(ConnectionHub(backoff=FAST_BACKOFF)).start()
    try:
        assert runtime.start() is runtime and runtime.started  # idempotent
        runtime.run(runtime.hub.ensure(stdio_target("single", "garbage", marker, "--mode", "noise")))
        runtime.run(runtime.hub.wait_connected("single", 10))
        assert len(marked_pids(marker)) == 1
    finally:
        runtime.shutdown()
    assert marked_pids(marker) == []
    runtime.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="shut down"):
        runtime.start()


def test_children_die_with_the_process_via_atexit(marker: str) -> None:
    """A program that never calls shutdown: the atexit hook must still stop its stdio servers.

    The "stubborn" server ignores the end of its stdin, so without the hook it would be orphaned (checked by
    hand: unregistering the hook leaves it running under init).
    """
    program = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from mcp_client import ConnectionHub, FleetRuntime
        from tests.connections.helpers import stdio_target
        runtime = FleetRuntime(ConnectionHub()).start()
        for key in ("x1", "x2"):
            runtime.run(runtime.hub.ensure(stdio_target(key, "garbage", {marker!r}, "--mode", "stubborn")))
            status = runtime.run(runtime.hub.wait_connected(key, 10))
            print(status.pid, flush=True)
        """
    )
    done = subprocess.run([PYTHON, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pids = [int(line) for line in done.stdout.split()]
    assert len(pids) == 2
    assert wait_until(lambda: marked_pids(marker) == [], 5.0), marked_pids(marker)
