"""Composing async steps: parallelism proven with events, dependencies, timeouts, failure handling."""

from __future__ import annotations

import asyncio
import json
import logging
import math

import pytest

from coordinator.workflows import (
    Step,
    StepContext,
    StepRecord,
    StepState,
    Workflow,
    WorkflowState,
    fan_out_steps,
    run_workflow,
)

# A generous bound for steps that must finish: it only matters when the code under test is broken,
# turning a hang into a readable failure instead of a test-suite timeout.
SAFETY_SECONDS = 5.0


def returning(value):
    async def run(context: StepContext):
        return value

    return run


def raising(exc: Exception):
    async def run(context: StepContext):
        raise exc

    return run


async def forever(context: StepContext):
    await asyncio.Event().wait()


def states(result) -> dict[str, str]:
    return {record.name: str(record.state) for record in result.steps}


# -- parallelism and dependencies -------------------------------------------------------------


async def test_independent_steps_run_at_the_same_time():
    # Each step waits for the other's event: run one after the other, both would time out.
    left_started, right_started = asyncio.Event(), asyncio.Event()

    def meeting(mine: asyncio.Event, theirs: asyncio.Event, value: str):
        async def run(context: StepContext):
            mine.set()
            await theirs.wait()
            return value

        return run

    workflow = Workflow(
        "meet",
        [
            Step("left", meeting(left_started, right_started, "L"), timeout_seconds=SAFETY_SECONDS),
            Step("right", meeting(right_started, left_started, "R"), timeout_seconds=SAFETY_SECONDS),
        ],
    )

    result = await run_workflow(workflow)

    assert result.state == WorkflowState.SUCCEEDED, result.error
    assert result.results == {"left": "L", "right": "R"}


async def test_a_fan_out_group_runs_in_parallel_and_its_dependant_sees_every_result():
    exchanges = ["alpha", "beta", "gamma"]
    barrier = asyncio.Barrier(len(exchanges))  # passes only when all three are waiting at once

    def quote(exchange: str):
        async def run(context: StepContext):
            await barrier.wait()
            return {"exchange": exchange, "bid": len(exchange)}

        return run

    quotes = fan_out_steps("quote", exchanges, quote, timeout_seconds=SAFETY_SECONDS)

    async def analyse(context: StepContext):
        return sorted(answer["exchange"] for answer in context.results.values())

    workflow = Workflow("arbitrage", [*quotes, Step("analyse", analyse, after=tuple(s.name for s in quotes))])

    result = await run_workflow(workflow)

    assert [s.name for s in quotes] == ["quote:alpha", "quote:beta", "quote:gamma"]
    assert result.state == WorkflowState.SUCCEEDED, result.error
    assert result.results["analyse"] == ["alpha", "beta", "gamma"]


async def test_a_step_waits_for_its_dependencies_and_receives_only_their_results():
    order: list[str] = []
    seen: dict[str, dict] = {}

    def recording(name: str, value: int):
        async def run(context: StepContext):
            order.append(name)
            seen[name] = dict(context.results)
            return value + sum(context.results.values())

        return run

    workflow = Workflow(
        "chain",
        [
            Step("total", recording("total", 100), after=("double", "one")),
            Step("double", recording("double", 2), after=("one",)),
            Step("one", recording("one", 1)),
        ],
    )

    result = await run_workflow(workflow)

    assert order == ["one", "double", "total"]
    assert seen == {"one": {}, "double": {"one": 1}, "total": {"double": 3, "one": 1}}
    assert result.results == {"one": 1, "double": 3, "total": 104}
    # records keep the definition order, whatever the execution order
    assert [r.name for r in result.steps] == ["total", "double", "one"]
    assert all(r.state == StepState.SUCCEEDED for r in result.steps)
    assert all(r.started_at <= r.finished_at and r.duration_ms >= 0 for r in result.steps)


async def test_an_empty_workflow_succeeds():
    result = await run_workflow(Workflow("nothing", []))

    assert (result.state, result.steps, result.results) == (WorkflowState.SUCCEEDED, [], {})


# -- timeouts ---------------------------------------------------------------------------------


async def test_a_step_over_its_timeout_is_timed_out_and_fails_the_workflow():
    workflow = Workflow(
        "slow",
        [Step("hang", forever, timeout_seconds=0.05), Step("after-hang", returning(1), after=("hang",))],
    )

    result = await run_workflow(workflow)

    assert result.state == WorkflowState.FAILED
    assert states(result) == {"hang": "timed_out", "after-hang": "skipped"}
    assert result.step("hang").error == "timed out after 0.05 s (step timeout)"
    assert result.error == "step 'hang' timed out: timed out after 0.05 s (step timeout)"
    assert "'hang'" in result.step("after-hang").error


async def test_the_workflow_deadline_bounds_every_step():
    remaining: list[float | None] = []

    async def patient(context: StepContext):
        remaining.append(context.remaining_seconds)
        await asyncio.Event().wait()

    workflow = Workflow("bounded", [Step("patient", patient, timeout_seconds=60)])

    result = await run_workflow(workflow, deadline_seconds=0.05)

    assert result.state == WorkflowState.FAILED
    assert result.step("patient").state == StepState.TIMED_OUT
    assert result.step("patient").error == "workflow deadline of 0.05 s reached"
    assert 0 < remaining[0] <= 0.05


async def test_a_step_due_after_the_deadline_is_timed_out_without_running():
    ran: list[str] = []

    async def must_not_run(context: StepContext):
        ran.append(context.step)

    # "report" is defined first but can only become ready once "enrich" has been refused at its start.
    workflow = Workflow(
        "late",
        [
            Step("report", must_not_run, after=("enrich",)),
            Step("fetch", forever, optional=True),
            Step("enrich", must_not_run, after=("fetch",), optional=True),
        ],
    )

    result = await run_workflow(workflow, deadline_seconds=0.05)

    assert ran == []
    assert states(result) == {"report": "timed_out", "fetch": "timed_out", "enrich": "timed_out"}
    assert result.step("report").error == "workflow deadline of 0.05 s reached before the step could start"
    assert result.step("report").started_at is None
    assert result.state == WorkflowState.FAILED
    assert result.error.startswith("step 'report' timed out")


async def test_a_step_with_no_deadline_sees_no_remaining_time():
    async def look(context: StepContext):
        return context.remaining_seconds

    result = await run_workflow(Workflow("open-ended", [Step("look", look)]))

    assert result.results == {"look": None}


async def test_a_step_that_raises_timeout_error_itself_failed_rather_than_timed_out():
    result = await run_workflow(Workflow("own", [Step("call", raising(TimeoutError("upstream")), timeout_seconds=5)]))

    assert result.step("call").state == StepState.FAILED
    assert result.step("call").error == "TimeoutError: upstream"


# -- failure ----------------------------------------------------------------------------------


async def test_a_failure_cancels_the_running_steps_and_skips_the_rest():
    slow_started = asyncio.Event()
    slow_cancelled = asyncio.Event()

    async def slow(context: StepContext):
        slow_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            slow_cancelled.set()
            raise

    async def breaks_once_slow_runs(context: StepContext):
        await slow_started.wait()
        raise RuntimeError("exchange refused")

    workflow = Workflow(
        "doomed",
        [
            Step("slow", slow),
            Step("breaks", breaks_once_slow_runs, timeout_seconds=SAFETY_SECONDS),
            Step("after-breaks", returning(1), after=("breaks",)),
            Step("after-slow", returning(2), after=("slow",)),
        ],
    )

    result = await run_workflow(workflow)

    assert result.state == WorkflowState.FAILED
    assert result.error == "step 'breaks' failed: RuntimeError: exchange refused"
    assert states(result) == {
        "slow": "cancelled",
        "breaks": "failed",
        "after-breaks": "skipped",
        "after-slow": "skipped",
    }
    assert slow_cancelled.is_set()
    assert result.step("slow").error == "cancelled: step 'breaks' failed: RuntimeError: exchange refused"
    assert result.results == {}


async def test_an_optional_failure_does_not_fail_the_workflow_and_dependants_run_without_it():
    async def analyse(context: StepContext):
        return {"used": sorted(context.results), "missing": dict(context.failed)}

    workflow = Workflow(
        "tolerant",
        [
            Step("quote:alpha", returning(1), optional=True),
            Step("quote:delta", raising(ConnectionError("outage")), optional=True),
            Step("quote:gamma", forever, optional=True, timeout_seconds=0.05),
            Step("analyse", analyse, after=("quote:alpha", "quote:delta", "quote:gamma")),
        ],
    )

    result = await run_workflow(workflow)

    assert result.state == WorkflowState.SUCCEEDED
    assert result.error == ""
    assert states(result) == {
        "quote:alpha": "succeeded",
        "quote:delta": "failed",
        "quote:gamma": "timed_out",
        "analyse": "succeeded",
    }
    assert result.results["analyse"] == {
        "used": ["quote:alpha"],
        "missing": {
            "quote:delta": "ConnectionError: outage",
            "quote:gamma": "timed out after 0.05 s (step timeout)",
        },
    }


async def test_cancelling_the_run_cancels_its_steps():
    started = asyncio.Event()
    steps_seen: list[StepRecord] = []

    async def hang(context: StepContext):
        started.set()
        await asyncio.Event().wait()

    run = asyncio.create_task(run_workflow(Workflow("abandoned", [Step("hang", hang)]), on_step=steps_seen.append))
    async with asyncio.timeout(SAFETY_SECONDS):
        await started.wait()
    run.cancel()

    with pytest.raises(asyncio.CancelledError):
        await run
    assert [(r.name, r.state) for r in steps_seen] == [("hang", StepState.RUNNING), ("hang", StepState.CANCELLED)]


# -- on_step ----------------------------------------------------------------------------------


async def test_on_step_sees_every_state_change():
    seen: list[tuple[str, StepState]] = []
    workflow = Workflow(
        "observed",
        [
            Step("first", returning(1)),
            Step("second", raising(ValueError("no")), after=("first",)),
            Step("third", returning(3), after=("second",)),
        ],
    )

    await run_workflow(workflow, on_step=lambda record: seen.append((record.name, record.state)))

    assert seen == [
        ("first", StepState.RUNNING),
        ("first", StepState.SUCCEEDED),
        ("second", StepState.RUNNING),
        ("second", StepState.FAILED),
        ("third", StepState.SKIPPED),
    ]


async def test_a_raising_on_step_is_logged_and_does_not_break_the_run(caplog):
    def broken(record: StepRecord) -> None:
        raise RuntimeError("dashboard is down")

    workflow = Workflow("observed", [Step("a", returning(1)), Step("b", returning(2), after=("a",))])

    with caplog.at_level(logging.ERROR, logger="coordinator.workflows"):
        result = await run_workflow(workflow, on_step=broken)

    assert result.state == WorkflowState.SUCCEEDED
    assert result.results == {"a": 1, "b": 2}
    assert len([r for r in caplog.records if "on_step callback failed" in r.getMessage()]) == 4


# -- validation -------------------------------------------------------------------------------


def test_step_names_must_be_unique():
    with pytest.raises(ValueError, match="step name 'a' is used twice"):
        Workflow("w", [Step("a", returning(1)), Step("a", returning(2))])


def test_a_dependency_must_exist():
    with pytest.raises(ValueError, match="step 'b' runs after unknown step 'ghost'"):
        Workflow("w", [Step("a", returning(1)), Step("b", returning(2), after=("a", "ghost"))])


def test_cycles_are_refused_with_their_path():
    with pytest.raises(ValueError, match=r"dependency cycle: (a -> c -> b -> a|b -> a -> c -> b|c -> b -> a -> c)"):
        Workflow(
            "w",
            [
                Step("a", returning(1), after=("c",)),
                Step("b", returning(2), after=("a",)),
                Step("c", returning(3), after=("b",)),
                Step("d", returning(4)),
            ],
        )


def test_a_step_cannot_run_after_itself():
    with pytest.raises(ValueError, match="step 'a' is part of a dependency cycle: a -> a"):
        Workflow("w", [Step("a", returning(1), after=("a",))])


def test_a_diamond_is_not_a_cycle():
    workflow = Workflow(
        "diamond",
        [
            Step("top", returning(1)),
            Step("left", returning(2), after=("top",)),
            Step("right", returning(3), after=("top",)),
            Step("bottom", returning(4), after=("left", "right")),
        ],
    )

    assert [s.name for s in workflow.steps] == ["top", "left", "right", "bottom"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "step name must be a non-empty string"),
        ({"timeout_seconds": 0}, "step 'x': timeout_seconds must be a positive number"),
        ({"timeout_seconds": math.inf}, "timeout_seconds"),
        ({"after": "fetch"}, "after must be a sequence of step names, not a string"),
        ({"run": "not callable"}, "run must be an async callable"),
    ],
)
def test_steps_refuse_bad_definitions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Step(**({"name": "x", "run": returning(1)} | kwargs))


async def test_the_deadline_must_be_positive():
    with pytest.raises(ValueError, match="deadline_seconds"):
        await run_workflow(Workflow("w", []), deadline_seconds=0)


def test_fan_out_refuses_duplicate_items():
    with pytest.raises(ValueError, match=r"duplicate items \['beta'\]"):
        fan_out_steps("quote", ["alpha", "beta", "beta"], returning)


def test_fan_out_passes_step_options_through():
    steps = fan_out_steps("quote", ["alpha"], returning, after=("login",), timeout_seconds=2, optional=True)

    assert steps[0].name == "quote:alpha"
    assert (steps[0].after, steps[0].timeout_seconds, steps[0].optional) == (("login",), 2, True)


# -- to_json ----------------------------------------------------------------------------------


async def test_the_result_is_json_ready():
    class Priced:
        def to_json(self):
            return {"price": 1.5}

    workflow = Workflow(
        "report",
        [
            Step("priced", returning(Priced())),
            Step("opaque", returning(object())),
            Step("broken", raising(KeyError("bid")), optional=True),
        ],
    )

    result = await run_workflow(workflow)
    data = result.to_json()

    assert json.loads(json.dumps(data)) == data
    assert data["state"] == "succeeded"
    assert data["results"]["priced"] == {"price": 1.5}
    assert data["results"]["opaque"].startswith("<object object")
    broken = data["steps"][2]
    assert (broken["name"], broken["state"], broken["error"], broken["result"]) == (
        "broken",
        "failed",
        "KeyError: 'bid'",
        None,
    )
    assert broken["started_at"].endswith("+00:00")
