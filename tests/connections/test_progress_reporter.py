"""The progress callback every tool call carries (mcp_client/progress.py): bounded, coalesced, the last one kept.

The end-to-end path (a real server's notifications/progress -> calls.progress on /ws/events/) is tested in
tests/registry/test_call_progress.py; here the rules themselves, with the callback driven as the SDK drives it.
"""

from __future__ import annotations

import asyncio
import math

from mcp_client.progress import MAX_MESSAGE_CHARS, CallProgress, ProgressReporter


def _reporter(sent: list[CallProgress], interval: float = 0.2) -> ProgressReporter:
    return ProgressReporter(
        server="s", tool="t", correlation_id="c-1", caller="alice", publish=sent.append, min_interval=interval
    )


async def test_reports_inside_the_interval_are_coalesced_to_the_newest():
    sent: list[CallProgress] = []
    reporter = _reporter(sent)
    for step in range(1, 51):
        await reporter(step, 50, f"step {step}")
    # The first goes at once; the 49 that follow within the interval wait, the newest replacing the older.
    assert [item.progress for item in sent] == [1.0]
    async with asyncio.timeout(5):
        while len(sent) < 2:  # noqa: ASYNC110 - the interval's timer sends it
            await asyncio.sleep(0.01)
    assert [item.progress for item in sent] == [1.0, 50.0]
    assert sent[-1].message == "step 50" and sent[-1].total == 50.0
    assert (sent[-1].server, sent[-1].tool, sent[-1].correlation_id, sent[-1].caller) == ("s", "t", "c-1", "alice")
    assert reporter.received == 50 and reporter.sent == 2


async def test_the_end_of_the_call_sends_the_waiting_report_and_takes_no_more():
    sent: list[CallProgress] = []
    reporter = _reporter(sent, interval=60.0)
    await reporter(1, None, None)
    await reporter(2, None, "almost")
    assert [item.progress for item in sent] == [1.0]
    reporter.finish()  # the call answered: the waiting one goes now, before the answer
    assert [(item.progress, item.total, item.message) for item in sent] == [(1.0, None, ""), (2.0, None, "almost")]
    await reporter(3, None, "late")  # a server that reports after its answer
    reporter.finish()
    assert len(sent) == 2


async def test_what_a_server_sends_is_bounded():
    sent: list[CallProgress] = []
    reporter = _reporter(sent, interval=0.0)
    await reporter(math.nan, None, "x")
    await reporter(1, math.inf, "x")
    await reporter(True, None, "x")  # type: ignore[arg-type]
    assert sent == [] and reporter.refused == 3
    await reporter(1, 2, "<b>" + "m" * 10_000)
    assert len(sent[0].message) == MAX_MESSAGE_CHARS and sent[0].message.startswith("<b>")  # text, cut; shown as text
