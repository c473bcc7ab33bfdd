"""A small declarative way to compose async steps into a workflow: dependencies, parallelism, timeouts.

A `Workflow` is a list of `Step`s, each naming the steps it runs `after`. `run_workflow` starts every step as soon
as its dependencies are settled, so steps that share their dependencies run in parallel; there is no other notion
of a parallel group. Each step runs under its own timeout and never past the workflow's deadline.

Failure: a non-optional step that fails or times out fails the workflow; the steps still running are cancelled
and the ones not started are skipped. An optional step's failure is recorded and tolerated: the steps after it
still run, without its result (`StepContext.failed` says why it is missing), which is what a fan-out over
unreliable sources followed by one step that uses whatever arrived needs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

logger = logging.getLogger(__name__)


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class WorkflowState(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_UNSUCCESSFUL = frozenset({StepState.FAILED, StepState.TIMED_OUT})


@dataclass(frozen=True)
class StepContext:
    """What a running step may know: its dependencies' results and the time the workflow has left."""

    workflow: str
    step: str
    results: Mapping[str, Any]  # dependency name -> result, for the dependencies that succeeded
    failed: Mapping[str, str]  # optional dependency name -> error, for those that did not
    deadline: float | None = None  # event-loop time (loop.time()) at which the workflow's deadline falls

    @property
    def remaining_seconds(self) -> float | None:
        """Seconds until the workflow's deadline (never negative), or None when it has none."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


StepFunction = Callable[[StepContext], Awaitable[Any]]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepFunction
    after: tuple[str, ...] = ()
    timeout_seconds: float | None = None
    optional: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"step name must be a non-empty string, got {self.name!r}")
        if not callable(self.run):
            raise ValueError(f"step {self.name!r}: run must be an async callable, got {self.run!r}")
        if isinstance(self.after, str):  # after="fetch" would otherwise mean the steps "f", "e", "t"...
            raise ValueError(f"step {self.name!r}: after must be a sequence of step names, not a string")
        object.__setattr__(self, "after", tuple(self.after))
        if self.timeout_seconds is not None and not _positive(self.timeout_seconds):
            raise ValueError(
                f"step {self.name!r}: timeout_seconds must be a positive number, got {self.timeout_seconds!r}"
            )


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


class Workflow:
    """A named set of steps, checked on construction: unique names, known dependencies, no cycles."""

    def __init__(self, name: str, steps: Sequence[Step]) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"workflow name must be a non-empty string, got {name!r}")
        self.name = name
        self.steps: list[Step] = list(steps)
        by_name: dict[str, Step] = {}
        for step in self.steps:
            if step.name in by_name:
                raise ValueError(f"workflow {name!r}: step name {step.name!r} is used twice")
            by_name[step.name] = step
        for step in self.steps:
            for dependency in step.after:
                if dependency not in by_name:
                    raise ValueError(f"workflow {name!r}: step {step.name!r} runs after unknown step {dependency!r}")
        self._by_name = by_name
        cycle = self._find_cycle()
        if cycle:
            path = " -> ".join(cycle)
            raise ValueError(f"workflow {name!r}: step {cycle[0]!r} is part of a dependency cycle: {path}")

    def step(self, name: str) -> Step:
        return self._by_name[name]

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, steps={[s.name for s in self.steps]})"

    def _find_cycle(self) -> list[str]:
        """A dependency cycle as a path of step names (first == last), or [] when there is none."""
        done: set[str] = set()
        for start in self.steps:
            if start.name in done:
                continue
            # Iterative depth-first search along `after`: `path` is the chain being explored, `pending` the
            # dependencies each of its steps has still to explore.
            path = [start.name]
            on_path = {start.name}
            pending = [list(start.after)]
            while path:
                if not pending[-1]:
                    finished = path.pop()
                    on_path.discard(finished)
                    done.add(finished)
                    pending.pop()
                    continue
                dependency = pending[-1].pop()
                if dependency in on_path:
                    return path[path.index(dependency) :] + [dependency]
                if dependency not in done:
                    path.append(dependency)
                    on_path.add(dependency)
                    pending.append(list(self._by_name[dependency].after))
        return []


@dataclass
class StepRecord:
    name: str
    state: StepState = StepState.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    error: str = ""
    result: Any = None

    def to_json(self, *, with_result: bool = True) -> dict[str, Any]:
        """`with_result=False` for a step's progress (events, the operation's log): results can be large (order
        books), and converting them costs more than the step's own work."""
        data = {
            "name": self.name,
            "state": str(self.state),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_ms": self.duration_ms,
            "error": self.error,
        }
        if with_result:
            data["result"] = _jsonable(self.result)
        return data


@dataclass
class WorkflowResult:
    name: str
    state: WorkflowState
    steps: list[StepRecord]  # in definition order
    results: dict[str, Any] = field(default_factory=dict)  # step name -> result, for the steps that succeeded
    error: str = ""
    duration_ms: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.state == WorkflowState.SUCCEEDED

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": str(self.state),
            "error": self.error,
            "duration_ms": self.duration_ms,
            "steps": [record.to_json() for record in self.steps],
            "results": {name: _jsonable(value) for name, value in self.results.items()},
        }


def _jsonable(value: Any) -> Any:
    """Step results as JSON-ready values: their own to_json() when they have one, repr() as a last resort."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return repr(value)


def fan_out_steps(
    prefix: str,
    items: Sequence[str],
    make: Callable[[str], StepFunction],
    **step_kwargs: Any,
) -> list[Step]:
    """The same step for many items (e.g. one quote per exchange), named f"{prefix}:{item}"."""
    if len(set(items)) != len(items):
        duplicates = sorted({item for item in items if items.count(item) > 1})
        raise ValueError(f"fan_out_steps({prefix!r}): duplicate items {duplicates}")
    return [Step(name=f"{prefix}:{item}", run=make(item), **step_kwargs) for item in items]


async def run_workflow(
    workflow: Workflow,
    *,
    deadline_seconds: float | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
) -> WorkflowResult:
    """Run `workflow` to completion; never raises for a step's failure (see the result's state and records)."""
    if deadline_seconds is not None and not _positive(deadline_seconds):
        raise ValueError(f"deadline_seconds must be a positive number, got {deadline_seconds!r}")
    return await _Run(workflow, deadline_seconds, on_step).run()


class _Run:
    """The state of one run_workflow call."""

    def __init__(
        self,
        workflow: Workflow,
        deadline_seconds: float | None,
        on_step: Callable[[StepRecord], None] | None,
    ) -> None:
        self.workflow = workflow
        self.deadline_seconds = deadline_seconds
        self.on_step = on_step
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.deadline = None if deadline_seconds is None else self.started + deadline_seconds
        self.records = {step.name: StepRecord(step.name) for step in workflow.steps}
        self.started_mono: dict[str, float] = {}
        self.running: dict[asyncio.Task[Any], str] = {}
        self.error = ""  # set by the first non-optional failure; from then on nothing new starts

    async def run(self) -> WorkflowResult:
        try:
            while True:
                if not self.error:
                    self._start_ready_steps()
                if not self.running:
                    break
                done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self._settle(self.running.pop(task), task)
                if self.error and self.running:
                    await self._cancel_running(f"cancelled: {self.error}")
        except asyncio.CancelledError:
            await self._cancel_running("cancelled: the workflow was cancelled")
            raise
        self._skip_the_rest()
        return WorkflowResult(
            name=self.workflow.name,
            state=WorkflowState.FAILED if self.error else WorkflowState.SUCCEEDED,
            steps=list(self.records.values()),
            results={r.name: r.result for r in self.records.values() if r.state == StepState.SUCCEEDED},
            error=self.error,
            duration_ms=self._ms_since(self.started),
        )

    # scheduling

    def _start_ready_steps(self) -> None:
        # Repeated until nothing changes: a step refused at the start (deadline passed) settles at once and may make
        # steps defined before it ready.
        progress = True
        while progress and not self.error:
            progress = False
            for step in self.workflow.steps:
                if self.error:
                    return
                if self.records[step.name].state == StepState.PENDING and self._is_ready(step):
                    self._start(step)
                    progress = True

    def _is_ready(self, step: Step) -> bool:
        for name in step.after:
            state = self.records[name].state
            tolerated = self.workflow.step(name).optional and state in _UNSUCCESSFUL
            if state != StepState.SUCCEEDED and not tolerated:
                return False
        return True

    def _start(self, step: Step) -> None:
        record = self.records[step.name]
        now = self.loop.time()
        if self.deadline is not None and now >= self.deadline:
            # Starting it would only time it out at its first await; say plainly why it never ran.
            self._finish(step, StepState.TIMED_OUT, error=f"{self._deadline_text()} before the step could start")
            return
        context = StepContext(
            workflow=self.workflow.name,
            step=step.name,
            results=MappingProxyType(
                {n: self.records[n].result for n in step.after if self.records[n].state == StepState.SUCCEEDED}
            ),
            failed=MappingProxyType(
                {n: self.records[n].error for n in step.after if self.records[n].state != StepState.SUCCEEDED}
            ),
            deadline=self.deadline,
        )
        step_deadline = None if step.timeout_seconds is None else now + step.timeout_seconds
        cut_by_workflow = self.deadline is not None and (step_deadline is None or self.deadline < step_deadline)
        if cut_by_workflow:
            when, timeout_error = self.deadline, self._deadline_text()
        elif step.timeout_seconds is not None:
            when, timeout_error = step_deadline, f"timed out after {step.timeout_seconds:g} s (step timeout)"
        else:
            when, timeout_error = None, ""
        record.state = StepState.RUNNING
        record.started_at = datetime.now(UTC)
        self.started_mono[step.name] = now
        self._notify(record)
        task = asyncio.create_task(
            _execute(step, context, when, timeout_error), name=f"{self.workflow.name}:{step.name}"
        )
        self.running[task] = step.name

    # endings

    def _settle(self, name: str, task: asyncio.Task[Any]) -> None:
        step = self.workflow.step(name)
        if task.cancelled():
            self._finish(step, StepState.CANCELLED, error=f"cancelled: {self.error}" if self.error else "cancelled")
            return
        state, result, error = task.result()
        self._finish(step, state, result=result, error=error)

    def _finish(self, step: Step, state: StepState, *, result: Any = None, error: str = "") -> None:
        record = self.records[step.name]
        record.state = state
        record.result = result
        record.error = error
        record.finished_at = datetime.now(UTC)
        if step.name in self.started_mono:
            record.duration_ms = self._ms_since(self.started_mono[step.name])
        if state in _UNSUCCESSFUL and not step.optional and not self.error:
            self.error = f"step {step.name!r} {'failed' if state == StepState.FAILED else 'timed out'}: {error}"
        self._notify(record)

    async def _cancel_running(self, reason: str) -> None:
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        # A step may take a moment to unwind (finally blocks); its record is final only once it has.
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            name = self.running.pop(task)
            step = self.workflow.step(name)
            if task.cancelled():
                self._finish(step, StepState.CANCELLED, error=reason)
            else:  # it finished before the cancellation reached it, or swallowed it
                state, result, error = task.result()
                self._finish(step, state, result=result, error=error)

    def _skip_the_rest(self) -> None:
        for step in self.workflow.steps:
            record = self.records[step.name]
            if record.state != StepState.PENDING:
                continue
            blockers = [n for n in step.after if self.records[n].state != StepState.SUCCEEDED]
            why = f"after {', '.join(repr(n) for n in blockers)}, which did not succeed" if blockers else "not started"
            record.state = StepState.SKIPPED
            record.error = f"skipped: {why} ({self.error})" if self.error else f"skipped: {why}"
            self._notify(record)

    # helpers

    def _notify(self, record: StepRecord) -> None:
        if self.on_step is None:
            return
        try:
            # A copy: the callback may keep it, and the live record changes again when the step ends.
            self.on_step(dataclasses.replace(record))
        except Exception:
            logger.exception(
                "workflow %s: on_step callback failed for step %s (%s)", self.workflow.name, record.name, record.state
            )

    def _deadline_text(self) -> str:
        return f"workflow deadline of {self.deadline_seconds:g} s reached"

    def _ms_since(self, start: float) -> float:
        return round((self.loop.time() - start) * 1000, 3)


async def _execute(
    step: Step, context: StepContext, when: float | None, timeout_error: str
) -> tuple[StepState, Any, str]:
    """Run one step under its timeout; every outcome but cancellation comes back as (state, result, error)."""
    timeout = asyncio.timeout_at(when)
    try:
        async with timeout:
            result = await step.run(context)
    except TimeoutError as exc:
        if timeout.expired():
            return StepState.TIMED_OUT, None, timeout_error
        return StepState.FAILED, None, _describe(exc)  # the step's own TimeoutError, e.g. from a call it made
    except Exception as exc:
        logger.debug("workflow %s: step %s failed", context.workflow, step.name, exc_info=True)
        return StepState.FAILED, None, _describe(exc)
    return StepState.SUCCEEDED, result, ""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
