from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from coordinator.models import Operation


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
