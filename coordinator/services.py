"""Writes: an operation started, its steps, its end; each published on the bus (`coordinator.operations`)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from django.utils import timezone

from coordinator.models import Operation, OperationState
from pipeline.running import publish

EVENT_STREAM = "coordinator.operations"


def operation_event(operation: Operation) -> dict[str, Any]:
    return {
        "operation_id": operation.pk,
        "kind": operation.kind,
        "state": operation.state,
        "parameters": operation.parameters,
        "error": operation.error or None,
        "started_at": operation.started_at.isoformat(),
        "finished_at": operation.finished_at.isoformat() if operation.finished_at else None,
        "duration_ms": operation.duration_ms,
        "created_by": operation.created_by,
    }


def operation_start(*, kind: str, parameters: dict[str, Any], created_by: str) -> Operation:
    operation = Operation.objects.create(
        kind=kind, parameters=parameters, created_by=created_by[:150], started_at=timezone.now()
    )
    publish(EVENT_STREAM, "started", operation_event(operation))
    return operation


class StepLog:
    """The steps of a running operation as they happen: kept for the operation's row, each published at once.

    `record` is called from the fleet loop (the workflow's on_step); it only appends and publishes (both thread-safe
    and non-blocking), the row is written once at the end."""

    def __init__(self, operation: Operation) -> None:
        self.operation_id = operation.pk
        self.kind = operation.kind
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any]] = {}

    def record(self, step: dict[str, Any]) -> None:
        with self._lock:
            self._latest[step["name"]] = step
        publish(EVENT_STREAM, "step", {"operation_id": self.operation_id, "kind": self.kind, "step": step})

    def steps(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._latest.values())


def operation_finish(
    operation: Operation,
    *,
    steps: list[dict[str, Any]],
    result: dict[str, Any] | None,
    error: str = "",
    finished_at: datetime | None = None,
) -> Operation:
    operation.finished_at = finished_at or timezone.now()
    operation.duration_ms = (operation.finished_at - operation.started_at).total_seconds() * 1000.0
    operation.state = OperationState.FAILED if error else OperationState.SUCCEEDED
    operation.steps, operation.result, operation.error = steps, result, error
    operation.save(update_fields=["finished_at", "duration_ms", "state", "steps", "result", "error"])
    publish(EVENT_STREAM, "finished", operation_event(operation))
    return operation
