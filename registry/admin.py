"""Django admin for the registry. env and headers are write-only here too: the form never renders their values."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from registry.discovery import discover_and_record
from registry.models import CallRecord, Capability, CapabilitySnapshot, Server, Tag
from registry.permissions import role_of
from registry.policies import require_may_change
from registry.serializers import DEFINITION_FIELDS, ServerDefinitionSerializer
from registry.services import server_create, server_delete, server_update


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
    """The admin's form for a server. Its values are validated by `ServerDefinitionSerializer`, the one validation
    path a server definition takes (API, import and admin alike); the form only turns widgets into values."""

    env_values = SecretMappingField(label="Environment (secret)")
    header_values = SecretMappingField(label="HTTP headers (secret)")
    clear_secrets = forms.BooleanField(required=False, label="Remove all stored env and headers")

    class Meta:
        model = Server
        fields = [*DEFINITION_FIELDS]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        server: Server | None = self.instance if self.instance.pk else None
        if server is not None:
            self.fields["env_values"].help_text = "Stored keys: " + (", ".join(sorted(server.env)) or "none")
            self.fields["header_values"].help_text = "Stored keys: " + (", ".join(sorted(server.headers)) or "none")
        self.validated_definition: dict[str, Any] = {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        current: Server | None = self.instance if self.instance.pk else None
        data: dict[str, Any] = {}
        for name in DEFINITION_FIELDS:
            if name == "tags":
                data["tags"] = [tag.name for tag in cleaned.get("tags") or []]
            elif name in cleaned:
                value = cleaned[name]
                data[name] = "" if value is None and name in ("command", "cwd", "url", "display_name") else value
        # Blank secret boxes keep what is stored (the serializer keeps fields that are not given).
        if cleaned.get("clear_secrets"):
            data["env"], data["headers"] = {}, {}
        for field, source in (("env", "env_values"), ("headers", "header_values")):
            if cleaned.get(source) is not None:
                data[field] = cleaned[source]
        definition = ServerDefinitionSerializer(instance=current, data=data)
        if not definition.is_valid():
            for field, messages_ in definition.errors.items():
                target = FORM_FIELD_OF.get(field, field)
                for message in messages_ if isinstance(messages_, list) else [messages_]:
                    self.add_error(target if target in self.fields else None, str(message))
            return cleaned
        self.validated_definition = dict(definition.validated_data)
        return cleaned


# Serializer field -> the admin form field that shows its error.
FORM_FIELD_OF = {"env": "env_values", "headers": "header_values", "non_field_errors": None}


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
    # Few, short columns, so the list fits an admin window beside its filters instead of being cut off.
    list_display = ["name", "status", "server_type", "transport", "enabled", "last_seen_at"]
    list_per_page = 50
    list_filter = ["status", "transport", "server_type", "enabled", "tags"]
    search_fields = ["name", "display_name", "description"]
    readonly_fields = ["status", "status_reason", "protocol_version", "last_seen_at", "last_error", "created_at"]
    filter_horizontal = ["tags"]
    inlines = [CapabilityInline]
    actions = ["discover_now"]

    @admin.action(description="Discover capabilities now")
    def discover_now(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        for server in queryset.filter(enabled=True):
            outcome = discover_and_record(server=server, caller=request.user.get_username())
            if outcome["ok"]:
                self.message_user(request, f"{server.name}: discovered", messages.SUCCESS)
            else:
                self.message_user(request, f"{server.name}: {outcome['error']}", messages.ERROR)

    def save_model(self, request: HttpRequest, obj: Server, form: Any, change: bool) -> None:
        # Through the services, like the API: status follows `enabled`, tags are set, secrets kept unless replaced.
        definition = dict(form.validated_definition)
        stored = Server.objects.get(pk=obj.pk) if change else None
        # The same rules as the API and the import (staff are admins, so today they always pass).
        require_may_change(role=role_of(request.user), server=stored, transport=definition.get("transport"))
        if stored is not None:
            server = server_update(server=stored, by=request.user.get_username(), **definition)
        else:
            server = server_create(**definition)
        obj.pk = server.pk
        obj.refresh_from_db()
        # The admin wraps the request in a transaction: the services announce the change (and the live session
        # follows) only once it is committed, so no MCP work happens while the transaction holds the database.

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Tags were set by the service; the capability inline is read-only.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request: HttpRequest, obj: Server) -> None:
        require_may_change(role=role_of(request.user), server=obj)
        server_delete(server=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        for server in queryset:
            self.delete_model(request, server)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


class AuditTrailAdmin(admin.ModelAdmin):
    """Rows that record what happened (discoveries, the capability index, calls): readable, never added, edited or
    deleted by hand. Retention prunes them; a server's removal takes its rows with it."""

    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CapabilitySnapshot)
class CapabilitySnapshotAdmin(AuditTrailAdmin):
    list_display = ["server", "discovered_at", "last_confirmed_at", "protocol_version"]
    list_filter = ["server"]


@admin.register(Capability)
class CapabilityAdmin(AuditTrailAdmin):
    list_display = ["name", "kind", "server", "identifier"]
    list_filter = ["kind", "server"]
    search_fields = ["name", "identifier", "description"]


@admin.register(CallRecord)
class CallRecordAdmin(AuditTrailAdmin):
    list_display = ["server", "operation", "target_name", "started_at", "latency_ms", "ok", "error_kind"]
    list_filter = ["ok", "operation", "server"]
    date_hierarchy = "started_at"
