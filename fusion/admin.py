from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from fusion.models import FusionRun, SourceTrust
from fusion.services import reset_trust


@admin.register(FusionRun)
class FusionRunAdmin(admin.ModelAdmin):
    """Runs are the engine's record, with their explanation: looked at, never edited."""

    list_display = [
        "id",
        "created_at",
        "tool",
        "resource",
        "strategy",
        "quorum_met",
        "confidence",
        "sources_used",
        "sources_asked",
        "duration_ms",
        "caller",
    ]
    list_filter = ["strategy", "quorum_met", "tool"]
    search_fields = ["tool", "resource", "caller", "error"]
    date_hierarchy = "created_at"
    exclude = ["explanation", "sources"]
    readonly_fields = ["explanation_pretty", "sources_pretty"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Sources")
    def sources_pretty(self, run: FusionRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(run.sources, indent=2))

    @admin.display(description="Explanation")
    def explanation_pretty(self, run: FusionRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(run.explanation, indent=2))


@admin.register(SourceTrust)
class SourceTrustAdmin(admin.ModelAdmin):
    list_display = ["server", "subject", "score", "agreements", "observations", "updated_at"]
    list_filter = ["subject"]
    search_fields = ["server__name", "subject"]
    readonly_fields = ["server", "subject", "observations", "agreements", "updated_at"]
    actions = ["reset_to_prior"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # trust is earned in runs, not typed in

    @admin.action(description="Reset trust to the prior (after a source was fixed)")
    def reset_to_prior(self, request: HttpRequest, queryset: QuerySet[SourceTrust]) -> None:
        count = reset_trust(queryset, timezone.now())
        self.message_user(request, f"Reset {count} trust score(s) to the prior.", messages.SUCCESS)
