from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from coordinator.finishing import finish_all
from coordinator.models import Operation, Participant, Transaction


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    """Operations are the coordinator's record: looked at, never edited."""

    list_display = ["id", "kind", "state", "started_at", "duration_ms", "created_by", "error"]
    list_filter = ["kind", "state"]
    search_fields = ["created_by", "error"]
    date_hierarchy = "started_at"
    exclude = ["steps", "result", "parameters"]
    readonly_fields = ["parameters_pretty", "steps_pretty", "result_pretty"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Parameters")
    def parameters_pretty(self, operation: Operation) -> str:
        return format_html("<pre>{}</pre>", json.dumps(operation.parameters, indent=2))

    @admin.display(description="Steps")
    def steps_pretty(self, operation: Operation) -> str:
        return format_html("<pre>{}</pre>", json.dumps(operation.steps, indent=2))

    @admin.display(description="Result")
    def result_pretty(self, operation: Operation) -> str:
        return format_html("<pre>{}</pre>", json.dumps(operation.result, indent=2))


class ParticipantInline(admin.TabularInline):
    model = Participant
    extra = 0
    can_delete = False
    fields = ["position", "server", "order", "idempotency_key", "state", "reservation_id", "error"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = ["id", "state", "decision", "created_at", "decided_at", "finished_at", "created_by"]
    list_filter = ["state", "decision"]
    readonly_fields = [
        "protocol",
        "state",
        "decision",
        "decided_at",
        "reason",
        "parameters",
        "created_by",
        "created_at",
        "finished_at",
        "operation",
        # What keeps a request to one run is the log's, not an admin's to edit.
        "idempotency_key",
        "request_digest",
        "analysis",
        "opportunity",
        "holds_opportunity",
    ]
    inlines = [ParticipantInline]
    actions = ["finish_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Finish now by the recorded decision (no decision: abort)")
    def finish_now(self, request: HttpRequest, queryset: Any) -> None:
        finish_all(queryset.order_by("id"))
        self.message_user(request, "Finished what could be finished; see each transaction's state.")
