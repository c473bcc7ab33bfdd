"""Django admin for the registry. env and headers are write-only here too: the form never renders their values."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from registry import fleet
from registry.models import CallRecord, Capability, CapabilitySnapshot, Server, Tag
from registry.validation import transport_errors


class SecretMappingField(forms.CharField):
    """A JSON object of string values, typed in but never displayed; blank keeps what is stored."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": '{"NAME": "value"} (blank keeps the current values)'})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, strip=True, **kwargs)

    def to_python(self, value: Any) -> dict[str, str] | None:
        text = super().to_python(value)
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
        ):
            raise forms.ValidationError("Must be a JSON object mapping names to string values.")
        return parsed


class ServerAdminForm(forms.ModelForm):
    env_values = SecretMappingField(label="Environment (secret)")
    header_values = SecretMappingField(label="HTTP headers (secret)")
    clear_secrets = forms.BooleanField(required=False, label="Remove all stored env and headers")

    class Meta:
        model = Server
        exclude = ["env", "headers"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        server: Server | None = self.instance if self.instance.pk else None
        if server is not None:
            self.fields["env_values"].help_text = "Stored keys: " + (", ".join(sorted(server.env)) or "none")
            self.fields["header_values"].help_text = "Stored keys: " + (", ".join(sorted(server.headers)) or "none")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        env = cleaned.get("env_values")
        headers = cleaned.get("header_values")
        if cleaned.get("clear_secrets"):
            env, headers = {}, {}
        env = env if env is not None else dict(self.instance.env or {})
        headers = headers if headers is not None else dict(self.instance.headers or {})
        errors = transport_errors(
            transport=cleaned.get("transport", ""),
            command=cleaned.get("command", "") or "",
            args=cleaned.get("args", []),
            cwd=cleaned.get("cwd", "") or "",
            url=cleaned.get("url", "") or "",
            env=env,
            headers=headers,
        )
        for field, message in errors.items():
            self.add_error({"env": "env_values", "headers": "header_values"}.get(field, field), message)
        cleaned["env"], cleaned["headers"] = env, headers
        return cleaned

    def save(self, commit: bool = True) -> Server:
        server = super().save(commit=False)
        server.env = self.cleaned_data["env"]
        server.headers = self.cleaned_data["headers"]
        if commit:
            server.save()
            self.save_m2m()
        return server


class CapabilityInline(admin.TabularInline):
    model = Capability
    extra = 0
    can_delete = False
    fields = ["kind", "name", "identifier", "description"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    form = ServerAdminForm
    list_display = ["name", "server_type", "transport", "status", "priority", "enabled", "last_seen_at"]
    list_filter = ["status", "transport", "server_type", "enabled", "tags"]
    search_fields = ["name", "display_name", "description"]
    readonly_fields = ["status", "status_reason", "protocol_version", "last_seen_at", "last_error", "created_at"]
    filter_horizontal = ["tags"]
    inlines = [CapabilityInline]
    actions = ["discover_now"]

    @admin.action(description="Discover capabilities now")
    def discover_now(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        for server in queryset.filter(enabled=True):
            outcome = fleet.server_discover(server=server)
            if outcome["ok"]:
                self.message_user(request, f"{server.name}: discovered", messages.SUCCESS)
            else:
                self.message_user(request, f"{server.name}: {outcome['error']}", messages.ERROR)

    def save_model(self, request: HttpRequest, obj: Server, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        fleet.server_reconcile(server_id=obj.pk)

    def delete_model(self, request: HttpRequest, obj: Server) -> None:
        server_id = obj.pk
        super().delete_model(request, obj)
        fleet.server_reconcile(server_id=server_id)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(CapabilitySnapshot)
class CapabilitySnapshotAdmin(admin.ModelAdmin):
    list_display = ["server", "discovered_at", "last_confirmed_at", "protocol_version"]
    list_filter = ["server"]
    readonly_fields = [field.name for field in CapabilitySnapshot._meta.fields]


@admin.register(Capability)
class CapabilityAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "server", "identifier"]
    list_filter = ["kind", "server"]
    search_fields = ["name", "identifier", "description"]


@admin.register(CallRecord)
class CallRecordAdmin(admin.ModelAdmin):
    list_display = ["server", "operation", "target_name", "started_at", "latency_ms", "ok", "error_kind"]
    list_filter = ["ok", "operation", "server"]
    date_hierarchy = "started_at"
