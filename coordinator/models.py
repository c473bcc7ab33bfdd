"""Coordinated operations: every arbitrage analysis, balanced call and (later) transaction, with its steps."""

from __future__ import annotations

from django.db import models


class OperationKind(models.TextChoices):
    ARBITRAGE = "arbitrage", "Arbitrage analysis"
    CALL = "call", "Balanced call"


class OperationState(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Operation(models.Model):
    kind = models.CharField(max_length=32, choices=OperationKind.choices)
    state = models.CharField(max_length=16, choices=OperationState.choices, default=OperationState.RUNNING)
    parameters = models.JSONField(default=dict)
    steps = models.JSONField(default=list, help_text="Each step: name, state, started/finished, duration, error.")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["kind", "-started_at"]), models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.state}"
