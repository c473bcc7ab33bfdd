from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from health.models import HealthRollup, HealthSample, MaintenanceWindow


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    list_display = ["name", "starts_at", "ends_at", "recurrence", "server_type", "tag", "created_by"]
    filter_horizontal = ["servers"]
    readonly_fields = ["created_by"]

    def save_model(self, request: HttpRequest, obj: MaintenanceWindow, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Samples and rollups are the monitor's record: looked at, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(HealthSample)
class HealthSampleAdmin(ReadOnlyAdmin):
    list_display = ["server", "at", "kind", "ok", "latency_ms", "tool", "error", "in_maintenance"]
    list_filter = ["kind", "ok", "in_maintenance"]
    list_select_related = ["server"]


@admin.register(HealthRollup)
class HealthRollupAdmin(ReadOnlyAdmin):
    list_display = ["server", "resolution", "start", "checks", "ok", "latency_p50_ms", "latency_p95_ms"]
    list_filter = ["resolution"]
    list_select_related = ["server"]
