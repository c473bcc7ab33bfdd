from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.timezone import localtime

from health.alerts_api import ChannelSerializer
from health.models import (
    Alert,
    AlertRule,
    HealthRollup,
    HealthSample,
    MaintenanceWindow,
    NotificationChannel,
    NotificationDelivery,
    Silence,
)


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


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "threshold",
        "severity",
        "for_seconds",
        "server_type",
        "tag",
        "enabled",
        "evaluation",
    ]
    list_filter = ["kind", "severity", "enabled"]
    readonly_fields = ["last_evaluated_at", "last_error", "last_error_at"]

    @admin.display(description="Evaluation")
    def evaluation(self, rule: AlertRule) -> str:
        # Escaped by the admin like any text: the error may quote a server's name or metadata.
        if rule.last_error:
            since = f" since {localtime(rule.last_error_at):%Y-%m-%d %H:%M:%S}" if rule.last_error_at else ""
            return f"failing{since}: {rule.last_error}"
        return "ok" if rule.last_evaluated_at else "not evaluated yet"


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = [
        "rule",
        "server_name",
        "state",
        "summary",
        "cause",
        "resolution",
        "fired_at",
        "resolved_at",
        "acknowledged_by",
    ]
    list_filter = ["state", "rule"]
    list_select_related = ["rule"]
    search_fields = ["server_name", "summary", "cause"]


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ["rule", "server", "starts_at", "ends_at", "comment", "created_by"]
    readonly_fields = ["created_by"]

    def save_model(self, request: HttpRequest, obj: Silence, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)


class ChannelForm(forms.ModelForm):
    # Write-only: the stored secret is never put back into the page; leaving the field empty keeps it.
    secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False), strip=False)

    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "url", "secret", "callable_name", "min_severity", "enabled"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        data = {key: value for key, value in cleaned.items() if key != "secret" or value}
        serializer = ChannelSerializer(instance=self.instance if self.instance.pk else None, data=data, partial=True)
        if not serializer.is_valid():
            for field, problems in serializer.errors.items():
                self.add_error(field if field in self.fields else None, problems)
        return cleaned

    def save(self, commit: bool = True) -> NotificationChannel:
        channel = super().save(commit=False)
        if not self.cleaned_data.get("secret") and self.instance.pk:
            channel.secret = NotificationChannel.objects.get(pk=self.instance.pk).secret
        if commit:
            channel.save()
        return channel


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "url", "callable_name", "min_severity", "enabled"]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["channel", "rule", "state", "attempts", "last_status_code", "last_error", "created_at"]
    list_filter = ["state"]
    list_select_related = ["channel", "rule"]
