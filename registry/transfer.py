"""Export and import of the registry as a versioned JSON document.

An import is validated in full before anything is written and applied in one transaction: one bad entry and nothing
changes, and the error names the entry and the field. Importing the same document twice changes nothing the second
time. Secrets (env, headers) leave the orchestrator only when explicitly asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import serializers

from registry.models import Server
from registry.oauth_crypto import decrypt
from registry.permissions import Role
from registry.policies import require_may_change
from registry.serializers import DEFINITION_FIELDS, SECRET_FIELDS, ServerDefinitionSerializer
from registry.services import server_create, server_update

DOCUMENT_FORMAT = "mcp-orchestrator/registry"
DOCUMENT_VERSION = 1
_TOP_LEVEL_KEYS = {"format", "version", "exported_at", "includes_secrets", "servers"}


class ImportDocumentError(ValueError):
    """The document cannot be imported; `problems` lists every problem found, each naming its entry and field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"Nothing was imported: {shown}")


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged, "dry_run": self.dry_run}


def _definition_of(server: Server, *, include_secrets: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {name: getattr(server, name) for name in DEFINITION_FIELDS if name != "tags"}
    entry["tags"] = sorted(tag.name for tag in server.tags.all())
    entry["oauth"] = dict(server.oauth)  # settings only: tokens never leave, the client secret only as a secret
    if include_secrets:
        entry["env"] = dict(server.env)
        entry["headers"] = dict(server.headers)
        if server.oauth and server.oauth_client_secret:
            entry["oauth"]["client_secret"] = decrypt(server.oauth_client_secret)
    else:
        # Key names tell the reader which secrets to supply without revealing them.
        entry["env_keys"] = sorted(server.env)
        entry["header_keys"] = sorted(server.headers)
    return entry


def registry_export(*, include_secrets: bool = False) -> dict[str, Any]:
    servers = Server.objects.prefetch_related("tags").order_by("name")
    return {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "includes_secrets": include_secrets,
        "servers": [_definition_of(server, include_secrets=include_secrets) for server in servers],
    }


MAX_PROBLEMS_LISTED = 50


def _more(count: int) -> list[str]:
    return [f"... and {count - MAX_PROBLEMS_LISTED} more problems"] if count > MAX_PROBLEMS_LISTED else []


def _shown(value: Any) -> str:
    """A value as it may appear in an error message: short (a 200 KB name must not come back many times)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _normalised_name(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    field = ServerDefinitionSerializer().fields["name"]
    try:
        return str(field.run_validation(raw))
    except serializers.ValidationError:
        return None


def _flatten_errors(detail: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(detail, dict):
        pairs: list[tuple[str, str]] = []
        for key, value in detail.items():
            name = "entry" if key == "non_field_errors" else f"{prefix}{key}"
            pairs.extend(_flatten_errors(value, f"{name}."))
            if not isinstance(value, dict | list):
                pairs.append((name, str(value)))
        return [(name.rstrip("."), message) for name, message in pairs]
    if isinstance(detail, list):
        pairs = []
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                pairs.extend(_flatten_errors(value, f"{prefix}{index}."))
            else:
                pairs.append((prefix.rstrip(".") or "entry", str(value)))
        return pairs
    return [(prefix.rstrip(".") or "entry", str(detail))]


def _validated_entries(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        raise ImportDocumentError(["the document must be a JSON object"])
    problems: list[str] = []
    if document.get("format") != DOCUMENT_FORMAT:
        problems.append(f"format: expected {DOCUMENT_FORMAT!r}, got {_shown(document.get('format'))}")
    version = document.get("version")
    # `type() is int`: JSON true would otherwise pass as 1.
    if type(version) is not int or version != DOCUMENT_VERSION:
        problems.append(f"version: this orchestrator reads version {DOCUMENT_VERSION}, got {_shown(version)}")
    unknown = sorted(set(document) - _TOP_LEVEL_KEYS)
    if unknown:
        problems.append(f"unknown top-level keys: {', '.join(_shown(key) for key in unknown[:10])}")
    entries = document.get("servers")
    if not isinstance(entries, list):
        problems.append("servers: must be a list of server definitions")
        raise ImportDocumentError(problems)

    allowed = {*DEFINITION_FIELDS, *SECRET_FIELDS, "env_keys", "header_keys"}
    seen_names: dict[str, int] = {}
    validated: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        label = f"servers[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{label}: must be an object")
            continue
        name = _normalised_name(entry.get("name"))
        if name is not None:
            label = f"{label} ({_shown(name)})"
        for key in sorted(set(entry) - allowed):
            problems.append(f"{label}: field {_shown(str(key))}: unknown field")
        # Looked up by the name as the serializer will store it (" alpha" is "alpha"), so the rules are applied
        # against the server that will really change.
        existing = Server.objects.filter(name=name).first() if name is not None else None
        # Validate as a whole definition, but against the stored server so omitted secrets count as kept.
        serializer = ServerDefinitionSerializer(instance=existing, data=entry)
        if not serializer.is_valid():
            for field_name, message in _flatten_errors(serializer.errors):
                problems.append(f"{label}: field {_shown(field_name)}: {message[:300]}")
            continue
        data = dict(serializer.validated_data)
        if data["name"] in seen_names:
            problems.append(f"{label}: field 'name': also used by servers[{seen_names[data['name']]}]")
            continue
        seen_names[data["name"]] = index
        validated.append(data)
    if problems:
        raise ImportDocumentError(problems[:MAX_PROBLEMS_LISTED] + _more(len(problems)))
    return validated


def _differs(server: Server, data: dict[str, Any]) -> bool:
    for name, value in data.items():
        current = sorted(tag.name for tag in server.tags.all()) if name == "tags" else getattr(server, name)
        if name == "tags":
            value = sorted(set(value))
        if name == "oauth_client_secret":  # encrypted anew each time: compare what it says
            current, value = decrypt(current), decrypt(value)
        if current != value:
            return True
    return False


def registry_import(*, document: Any, dry_run: bool = False, role: Role = Role.ADMIN) -> ImportReport:
    """Create or update every server the document defines; servers it does not mention are left alone.

    Each entry under the same role rules as the API (registry.policies); `role` is the importer's (a management
    command is run by whoever holds the machine, an admin). PermissionDenied changes nothing."""
    entries = _validated_entries(document)
    report = ImportReport(dry_run=dry_run)
    with transaction.atomic():
        for data in entries:
            server = Server.objects.filter(name=data["name"]).prefetch_related("tags").first()
            require_may_change(role=role, server=server, transport=data["transport"])
            if server is None:
                server_create(**data)
                report.created.append(data["name"])
            elif _differs(server, data):
                server_update(server=server, **{k: v for k, v in data.items() if k != "name"})
                report.updated.append(data["name"])
            else:
                report.unchanged.append(data["name"])
        if dry_run:
            transaction.set_rollback(True)
    return report
