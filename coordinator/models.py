"""Coordinated operations: every arbitrage analysis, balanced call and (later) transaction, with its steps."""

from __future__ import annotations

from django.db import models


class OperationKind(models.TextChoices):
    ARBITRAGE = "arbitrage", "Arbitrage analysis"
    CALL = "call", "Balanced call"
    TRANSACTION = "transaction", "Transaction"


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


class TransactionState(models.TextChoices):
    PREPARING = "preparing", "Preparing"  # phase one running: nothing decided yet
    COMMITTING = "committing", "Committing"  # decided to commit (durably); confirming on every participant
    ABORTING = "aborting", "Aborting"  # decided to abort (durably); cancelling what was reserved
    COMMITTED = "committed", "Committed"
    ABORTED = "aborted", "Aborted"
    IN_DOUBT = "in_doubt", "In doubt"  # phase two could not finish yet; recovery keeps trying


class Transaction(models.Model):
    """A transaction across servers: prepare (reserve) on every participant, a decision written durably, then
    confirm on all or cancel on all. The rows are the log recovery reads after a crash."""

    protocol = models.CharField(max_length=16, default="two_phase")
    state = models.CharField(max_length=16, choices=TransactionState.choices, default=TransactionState.PREPARING)
    decision = models.CharField(max_length=8, blank=True, help_text="commit or abort, written before phase two")
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why it aborted, or what phase two still waits for.")
    parameters = models.JSONField(default=dict)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    operation = models.OneToOneField(Operation, null=True, blank=True, on_delete=models.SET_NULL)
    # A client's retry of the same request finds this row by its key (per user) instead of running again; the
    # digest tells a true retry from the key reused for another request.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    request_digest = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the request body, key left out.")
    # The arbitrage opportunity this transaction executes. `holds_opportunity` is the claim the database keeps
    # unique, so that no two requests (sequential or concurrent) can both execute it: set on creation, cleared only
    # when the transaction aborts with nothing moved, which lets an operator try that opportunity again.
    analysis = models.ForeignKey(Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="executions")
    opportunity = models.PositiveIntegerField(null=True, blank=True)
    holds_opportunity = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state"])]
        constraints = [
            # NULL keys (no Idempotency-Key given) never collide, on SQLite and PostgreSQL alike.
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"], name="unique_transaction_idempotency_key"
            ),
            models.UniqueConstraint(
                fields=["analysis", "opportunity"],
                condition=models.Q(holds_opportunity=True),
                name="one_execution_per_opportunity",
            ),
        ]

    def __str__(self) -> str:
        return f"transaction #{self.pk} {self.state}"

    @property
    def idempotency_prefix(self) -> str:
        return f"tx{self.pk}"


class ParticipantState(models.TextChoices):
    PENDING = "pending", "Pending"
    PREPARED = "prepared", "Prepared"
    REFUSED = "refused", "Refused"  # the prepare failed: nothing is held
    UNKNOWN = "unknown", "Unknown"  # the prepare's answer never came: recovery asks by idempotency key
    CONFIRMED = "confirmed", "Confirmed"
    CANCELLED = "cancelled", "Cancelled"


class Participant(models.Model):
    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE, related_name="participants")
    position = models.PositiveSmallIntegerField()
    server = models.CharField(max_length=100)
    order = models.JSONField(help_text="symbol, side, quantity, limit_price")
    idempotency_key = models.CharField(max_length=200)
    state = models.CharField(max_length=16, choices=ParticipantState.choices, default=ParticipantState.PENDING)
    reservation_id = models.CharField(max_length=200, blank=True)
    prepared = models.JSONField(null=True, blank=True, help_text="The reservation as the participant answered it.")
    outcome = models.JSONField(null=True, blank=True, help_text="The fill, or the cancellation.")
    error = models.TextField(blank=True)
    timeline = models.JSONField(default=list, help_text="Each phase with its start, end and result.")

    class Meta:
        ordering = ["transaction_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["transaction", "position"], name="unique_participant_position"),
        ]

    def __str__(self) -> str:
        return f"{self.server} in #{self.transaction_id}: {self.state}"
