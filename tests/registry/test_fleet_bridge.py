"""The one bridge from sync code to the fleet loop: work runs there, the caller waits until the deadline plus the
hand-off slack, and a wait that runs out cancels the work and says which work it was."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from fleet import calls as fleet_calls
from fleet.calls import FleetTimedOut, fleet_runtime, run_on_fleet
from mcp_client import ConnectionHub, Deadline


def test_the_work_runs_on_the_fleet_loop_and_its_answer_comes_back():
    async def where() -> tuple[bool, str]:
        return asyncio.get_running_loop() is fleet_runtime().loop, threading.current_thread().name

    assert run_on_fleet(where(), deadline=Deadline.within(5.0), what="a look around") == (True, "mcp-fleet")
    # A callable gets the hub, on the fleet loop.
    assert run_on_fleet(lambda hub: _is_hub(hub), deadline=Deadline.within(5.0), what="the hub") is True


async def _is_hub(hub: ConnectionHub) -> bool:
    return isinstance(hub, ConnectionHub)


def test_work_past_its_deadline_is_cancelled_and_the_error_names_it(monkeypatch):
    monkeypatch.setattr(fleet_calls, "HANDOFF_SLACK_SECONDS", 0.2)
    cancelled = threading.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(FleetTimedOut) as caught:
        run_on_fleet(stuck(), deadline=Deadline.within(0.3), what="the stuck fan-out")
    waited = time.monotonic() - started
    assert 0.45 <= waited < 5.0  # the deadline and the slack, not the work's minute
    assert caught.value.what == "the stuck fan-out"
    assert "the stuck fan-out did not finish on the fleet loop" in str(caught.value)
    assert isinstance(caught.value, TimeoutError)  # what callers that catch timeouts already expect
    assert cancelled.wait(5.0), "the work kept running on the fleet loop"


def test_the_works_own_timeout_is_its_answer_not_a_hand_off_failure():
    async def times_out() -> None:
        raise TimeoutError("the upstream took too long")

    with pytest.raises(TimeoutError, match="the upstream took too long") as caught:
        run_on_fleet(times_out(), deadline=Deadline.within(5.0), what="a call")
    assert not isinstance(caught.value, FleetTimedOut)


def test_an_expired_deadline_still_gets_the_hand_off_slack():
    async def quick() -> str:
        return "done"

    assert run_on_fleet(quick(), deadline=Deadline.within(-1.0), what="late work") == "done"


def test_on_the_fleet_loop_it_refuses_instead_of_deadlocking():
    async def nested() -> str:
        inner = asyncio.sleep(0, result="never")
        try:
            run_on_fleet(inner, deadline=Deadline.within(1.0), what="nested work")
        except RuntimeError as exc:
            return str(exc)
        return "ran"

    answer = run_on_fleet(nested(), deadline=Deadline.within(5.0), what="outer work")
    assert "would deadlock on the fleet loop" in answer and "nested work" in answer
