"""API shapes of the registry. Secrets (env, headers) are write-only: only their key names are ever shown back."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.models import DEFAULT_MAX_CONCURRENCY, Capability, CapabilitySnapshot, Server, Transport
from registry.oauth_crypto import encrypt
from registry.oauth_store import OAUTH_FIELDS, grant_state
from registry.validation import (
    health_errors,
    oauth_errors,
    oauth_rebinding_errors,
    poll_errors,
    secrets_rebinding_errors,
    transport_errors,
)

# Fields a server definition is made of: the API writes them, the export/import document carries them.
DEFINITION_FIELDS = (
    "name",
    "display_name",
    "description",
    "transport",
    "command",
    "args",
    "cwd",
    "url",
    "server_type",
    "tags",
    "priority",
    "enabled",
    "metadata",
    "request_timeout_seconds",
    "max_concurrency",
    "oauth",
)
SECRET_FIELDS = ("env", "headers")


class OAuthDefinitionSerializer(serializers.Serializer):
    """The definition's `oauth` part: how the server's MCP authorization works for us. `client_secret` is write-only
    (stored encrypted); tokens are never part of a definition."""

    grant = serializers.ChoiceField(
        choices=["authorization_code", "client_credentials"],
        required=False,
        help_text="authorization_code (PKCE; a person approves with Authorize) or client_credentials.",
    )
    registration = serializers.ChoiceField(
        choices=["pre_registered", "dynamic", "metadata_document"],
        required=False,
        help_text="Default: pre_registered with a client_id, else dynamic (as the server's metadata allows).",
    )
    client_id = serializers.CharField(required=False, allow_blank=True, max_length=500)
    client_secret = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        trim_whitespace=False,
        max_length=8000,
        help_text="Write-only. With token_endpoint_auth_method private_key_jwt: the PEM private key.",
    )
    scope = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    client_metadata_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    token_endpoint_auth_method = serializers.ChoiceField(
        choices=["client_secret_basic", "client_secret_post", "none", "private_key_jwt"],
        required=False,
        allow_blank=True,
    )
    issuer = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key[:60]: ["Unknown field."] for key in unknown[:5]})
        return super().to_internal_value(data)


class ServerDefinitionSerializer(serializers.Serializer):
    """Validates a server definition; used by the API (create/update) and by every entry of an import."""

    name = serializers.SlugField(max_length=100)
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    transport = serializers.ChoiceField(
        choices=Transport.choices, error_messages={"invalid_choice": "Choose one of stdio, http or sse."}
    )
    command = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    args = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        default=list,
        help_text="Command-line arguments; shown to viewers, so put secrets in env instead.",
    )
    cwd = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    # trim_whitespace=False: a secret is stored exactly as given or refused with the reason, never silently altered.
    env = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        write_only=True,
        help_text="Environment of a stdio server. Secret: write-only, only the names are shown back.",
    )
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        write_only=True,
        help_text="HTTP headers (e.g. Authorization). Secret: write-only, only the names are shown back.",
    )
    server_type = serializers.SlugField(max_length=64, required=False, default="generic")
    tags = serializers.ListField(child=serializers.SlugField(max_length=64), required=False, default=list)
    priority = serializers.IntegerField(required=False, default=100, min_value=-1_000_000, max_value=1_000_000)
    enabled = serializers.BooleanField(required=False, default=True)
    metadata = serializers.DictField(required=False, default=dict)
    request_timeout_seconds = serializers.FloatField(required=False, default=10.0, min_value=0.1, max_value=600)
    max_concurrency = serializers.IntegerField(
        required=False,
        default=DEFAULT_MAX_CONCURRENCY,
        min_value=1,
        max_value=256,
        help_text="Requests in flight to this server at once; more wait their turn.",
    )

    oauth = OAuthDefinitionSerializer(
        required=False,
        allow_null=True,
        help_text="The MCP authorization flow (http/sse). {} or null: none. client_secret is write-only.",
    )

    def validate_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        problem = poll_errors(metadata) or health_errors(metadata)
        if problem:
            raise serializers.ValidationError(problem)
        return metadata

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # On a partial update the rules apply to the server as it will be, not just to the changed fields.
        current: Server | None = self.instance if isinstance(self.instance, Server) else None

        def effective(field: str, empty: Any) -> Any:
            if field in attrs:
                return attrs[field]
            return getattr(current, field) if current is not None else empty

        errors = transport_errors(
            transport=effective("transport", ""),
            command=effective("command", ""),
            args=effective("args", []),
            cwd=effective("cwd", ""),
            url=effective("url", ""),
            env=effective("env", {}),
            headers=effective("headers", {}),
        )
        errors = secrets_rebinding_errors(current=current, attrs=attrs) | errors
        if "oauth" in attrs or (current is not None and current.oauth and "transport" in attrs):
            oauth = attrs.get("oauth", current.oauth if current is not None else {})
            kept_secret = bool(current is not None and current.oauth_client_secret and "url" not in attrs)
            transport = effective("transport", "")
            errors |= oauth_errors(dict(oauth or {}), transport=transport, client_secret_kept=kept_secret)
        errors |= oauth_rebinding_errors(current=current, attrs=attrs)
        if errors:
            raise serializers.ValidationError(errors)
        if "oauth" in attrs:
            self._store_oauth(attrs)
        return attrs

    @staticmethod
    def _store_oauth(attrs: dict[str, Any]) -> None:
        """The stored form: the settings without the secret in `oauth`, the secret encrypted apart (kept as stored
        when a change gives none; dropped with OAuth)."""
        given = dict(attrs["oauth"] or {})
        secret = given.pop("client_secret", "")
        settings = {name: given[name] for name in OAUTH_FIELDS if given.get(name)}
        if settings and "grant" not in settings:
            settings["grant"] = "authorization_code"
        if settings and "registration" not in settings:
            settings["registration"] = "pre_registered" if settings.get("client_id") else "dynamic"
        attrs["oauth"] = settings
        if not settings:
            attrs["oauth_client_secret"] = ""
        elif secret:
            attrs["oauth_client_secret"] = encrypt(secret)


class ConnectionTestRequestSerializer(ServerDefinitionSerializer):
    """A definition to try before saving it: the same fields and rules as a create. `server` names a stored server
    being edited: the secrets not given are its stored ones, which stay with its endpoint (a changed URL, transport
    or command needs them given again, as an update does)."""

    name = serializers.SlugField(max_length=100, required=False, default="connection-test")
    server = serializers.SlugField(
        max_length=100, required=False, help_text="The stored server being edited, whose secrets fill in."
    )


class ConnectionTestResultSerializer(serializers.Serializer):
    """What the handshake and listing found, or why they failed (secrets scrubbed)."""

    ok = serializers.BooleanField()
    protocol_version = serializers.CharField(required=False)
    server_name = serializers.CharField(required=False, help_text="serverInfo.name, as the server reports it.")
    server_version = serializers.CharField(required=False)
    counts = serializers.DictField(
        child=serializers.IntegerField(), required=False, help_text="tools, resources, resource_templates, prompts."
    )
    tool_names = serializers.ListField(child=serializers.CharField(), required=False, help_text="The first 20.")
    truncated = serializers.DictField(child=serializers.CharField(), required=False)
    elapsed_ms = serializers.FloatField(help_text="Connect, handshake and listing, end to end.")
    error = serializers.CharField(required=False, help_text="Why it failed, in words.")


class ServerSerializer(ServerDefinitionSerializer):
    """A server as the API shows it: the definition without secrets, plus live state."""

    tags = serializers.SerializerMethodField()
    env_keys = serializers.SerializerMethodField()
    header_keys = serializers.SerializerMethodField()
    oauth = serializers.SerializerMethodField()
    status = serializers.CharField(read_only=True)
    status_reason = serializers.CharField(read_only=True)
    protocol_version = serializers.CharField(read_only=True)
    last_seen_at = serializers.DateTimeField(read_only=True)
    last_error = serializers.CharField(read_only=True)
    capability_counts = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_tags(self, server: Server) -> list[str]:
        return [tag.name for tag in server.tags.all()]

    def get_env_keys(self, server: Server) -> list[str]:
        return sorted(server.env)

    def get_header_keys(self, server: Server) -> list[str]:
        return sorted(server.headers)

    def get_oauth(self, server: Server) -> dict[str, Any] | None:
        """The OAuth settings without the secret, whether one is set, and the grant's state (never a token)."""
        if not server.oauth:
            return None
        shown: dict[str, Any] = {name: server.oauth.get(name, "") for name in OAUTH_FIELDS}
        shown["client_secret_set"] = bool(server.oauth_client_secret)
        shown["grant_state"] = grant_state(server)
        return shown

    def get_capability_counts(self, server: Server) -> dict[str, int]:
        annotated = getattr(server, "tool_count", None)
        if annotated is not None:
            return {
                "tools": server.tool_count,
                "resources": server.resource_count,
                "resource_templates": server.resource_template_count,
                "prompts": server.prompt_count,
            }
        counts = {"tools": 0, "resources": 0, "resource_templates": 0, "prompts": 0}
        plural = {
            "tool": "tools",
            "resource": "resources",
            "resource_template": "resource_templates",
            "prompt": "prompts",
        }
        for kind in server.capabilities.values_list("kind", flat=True):
            counts[plural[kind]] += 1
        return counts


def truncation_messages(snapshot: CapabilitySnapshot) -> dict[str, str]:
    return {listing: str(report.get("message", "")) for listing, report in (snapshot.truncation or {}).items()}


class CapabilitySnapshotSerializer(serializers.ModelSerializer):
    """The latest discovery in full. `truncated` says, in words, what discovery's limits left out of each list
    (absent lists were kept whole); `truncation` has the same as figures."""

    server = serializers.SlugRelatedField(slug_field="name", read_only=True)
    truncated = serializers.SerializerMethodField()

    class Meta:
        model = CapabilitySnapshot
        fields = [
            "id",
            "server",
            "discovered_at",
            "last_confirmed_at",
            "protocol_version",
            "server_info",
            "instructions",
            "capabilities",
            "tools",
            "resources",
            "resource_templates",
            "prompts",
            "truncated",
            "truncation",
            "content_hash",
        ]

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_truncated(self, snapshot: CapabilitySnapshot) -> dict[str, str]:
        """List -> what the limits left out of it, in words ("showing 1,000 of more than 5,000 tools; ...")."""
        return truncation_messages(snapshot)


class CapabilitySnapshotSummarySerializer(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField()
    truncated = serializers.SerializerMethodField()

    class Meta:
        model = CapabilitySnapshot
        fields = ["id", "discovered_at", "last_confirmed_at", "protocol_version", "content_hash", "counts", "truncated"]

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_truncated(self, snapshot: CapabilitySnapshot) -> dict[str, str]:
        return truncation_messages(snapshot)

    def get_counts(self, snapshot: CapabilitySnapshot) -> dict[str, int]:
        return {
            "tools": len(snapshot.tools),
            "resources": len(snapshot.resources),
            "resource_templates": len(snapshot.resource_templates),
            "prompts": len(snapshot.prompts),
        }


class CapabilitySerializer(serializers.ModelSerializer):
    server = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Capability
        fields = ["server", "kind", "name", "identifier", "title", "description"]


class ToolCallRequestSerializer(serializers.Serializer):
    tool = serializers.CharField(max_length=300)
    arguments = serializers.DictField(required=False, default=dict)
    timeout_seconds = serializers.FloatField(
        required=False, min_value=0.1, max_value=600, help_text="Default: the server's request timeout."
    )
    correlation_id = serializers.CharField(required=False, max_length=100, allow_blank=True, default="")


class ResourceReadRequestSerializer(serializers.Serializer):
    uri = serializers.CharField(max_length=2000)
    timeout_seconds = serializers.FloatField(required=False, min_value=0.1, max_value=600)
    correlation_id = serializers.CharField(required=False, max_length=100, allow_blank=True, default="")


class CallOutcomeSerializer(serializers.Serializer):
    operation = serializers.CharField()
    target_name = serializers.CharField()
    started_at = serializers.DateTimeField()
    latency_ms = serializers.FloatField()
    ok = serializers.BooleanField()
    error_kind = serializers.CharField(allow_null=True)
    error_message = serializers.CharField(allow_blank=True)
    correlation_id = serializers.CharField(allow_blank=True)
    caller = serializers.CharField(allow_blank=True)


class ToolCallResultSerializer(serializers.Serializer):
    content = serializers.ListField(child=serializers.DictField())
    structured_content = serializers.DictField(allow_null=True)
    is_error = serializers.BooleanField()


class ToolCallResponseSerializer(serializers.Serializer):
    result = ToolCallResultSerializer()
    outcome = CallOutcomeSerializer()


class ResourceReadResultSerializer(serializers.Serializer):
    uri = serializers.CharField()
    contents = serializers.ListField(child=serializers.DictField())


class ResourceReadResponseSerializer(serializers.Serializer):
    result = ResourceReadResultSerializer()
    outcome = CallOutcomeSerializer()


class FleetErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    outcome = CallOutcomeSerializer(required=False)
