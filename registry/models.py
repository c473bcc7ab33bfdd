"""The fleet: servers, what they can do (capability snapshots kept as a history), and every call's outcome."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Count, Q

# Requests in flight to one server at once (the connection layer's per-server semaphore); see ServerTarget.
DEFAULT_MAX_CONCURRENCY = 32


class Transport(models.TextChoices):
    STDIO = "stdio", "stdio (child process)"
    HTTP = "http", "Streamable HTTP"
    SSE = "sse", "SSE (legacy HTTP)"


class ServerStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    ONLINE = "online", "Online"  # healthy
    DEGRADED = "degraded", "Degraded"  # slow, or partly failing
    PENDING = "pending", "Pending"  # checks failing, still within the retry budget before it is called down
    UNHEALTHY = "unhealthy", "Unhealthy"  # answers, but its checks' expectations fail
    OFFLINE = "offline", "Offline"
    MAINTENANCE = "maintenance", "Maintenance"  # in a maintenance window: no alerts, not counted in availability
    DISABLED = "disabled", "Disabled"


class CapabilityKind(models.TextChoices):
    TOOL = "tool", "Tool"
    RESOURCE = "resource", "Resource"
    RESOURCE_TEMPLATE = "resource_template", "Resource template"
    PROMPT = "prompt", "Prompt"


class Tag(models.Model):
    name = models.SlugField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ServerQuerySet(models.QuerySet["Server"]):
    def enabled(self) -> ServerQuerySet:
        return self.filter(enabled=True)

    def of_type(self, server_type: str) -> ServerQuerySet:
        return self.filter(server_type=server_type)

    def with_tag(self, tag: str) -> ServerQuerySet:
        return self.filter(tags__name=tag).distinct()

    def tag_names(self) -> dict[int, tuple[str, ...]]:
        """Each server's tag names (servers without tags left out), in one query over the link table: loops that
        read the whole fleet every few seconds cannot afford `prefetch_related`, which builds a queryset per row."""
        links = Server.tags.through.objects.filter(server__in=self).values_list("server_id", "tag__name")
        found: dict[int, list[str]] = {}
        for server_id, name in links.order_by("tag__name"):
            found.setdefault(server_id, []).append(name)
        return {server_id: tuple(names) for server_id, names in found.items()}

    def with_status(self, status: str) -> ServerQuerySet:
        return self.filter(status=status)

    def with_capability(self, name: str, kind: str | None = None) -> ServerQuerySet:
        """Servers whose latest discovery offers a tool, resource (by name or URI), template or prompt of that name."""
        match = Q(capabilities__name=name) | Q(capabilities__identifier=name)
        if kind:
            match &= Q(capabilities__kind=kind)
        return self.filter(match).distinct()

    def with_capability_counts(self) -> ServerQuerySet:
        def count_of(kind: str) -> Count:
            return Count("capabilities", filter=Q(capabilities__kind=kind), distinct=True)

        return self.annotate(
            tool_count=count_of(CapabilityKind.TOOL),
            resource_count=count_of(CapabilityKind.RESOURCE),
            resource_template_count=count_of(CapabilityKind.RESOURCE_TEMPLATE),
            prompt_count=count_of(CapabilityKind.PROMPT),
        )

    def for_dashboard(self) -> ServerQuerySet:
        return self.with_capability_counts().prefetch_related("tags").order_by("-priority", "name")


class Server(models.Model):
    name = models.SlugField(max_length=100, unique=True, help_text="Unique name: letters, digits, - and _.")
    display_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    transport = models.CharField(max_length=8, choices=Transport.choices)
    # stdio: the command runs as a child process of the orchestrator, so only admins may set it.
    command = models.CharField(max_length=500, blank=True)
    args = models.JSONField(default=list, blank=True)
    env = models.JSONField(default=dict, blank=True, help_text="Secret: never shown back.")
    cwd = models.CharField(max_length=500, blank=True)
    # http / sse
    url = models.URLField(max_length=500, blank=True)
    headers = models.JSONField(default=dict, blank=True, help_text="Secret: never shown back.")
    # The MCP authorization flow (http/sse): grant, client registration, client_id, scope... ({} = none). Its client
    # secret is kept apart, encrypted (registry/oauth_crypto.py), write-only like env and headers.
    oauth = models.JSONField(default=dict, blank=True, help_text="OAuth settings (no secrets).")
    oauth_client_secret = models.TextField(blank=True, editable=False, help_text="Encrypted; never shown back.")

    server_type = models.SlugField(max_length=64, default="generic", help_text="e.g. exchange, utility.")
    tags = models.ManyToManyField(Tag, blank=True, related_name="servers")
    priority = models.IntegerField(default=100, help_text="Higher is preferred.")
    enabled = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Free-form, e.g. an exchange's fees.")
    request_timeout_seconds = models.FloatField(default=10.0)
    max_concurrency = models.PositiveSmallIntegerField(default=DEFAULT_MAX_CONCURRENCY)

    status = models.CharField(max_length=16, choices=ServerStatus.choices, default=ServerStatus.UNKNOWN)
    status_reason = models.CharField(max_length=500, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    protocol_version = models.CharField(max_length=32, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ServerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["server_type"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.name

    @property
    def endpoint_summary(self) -> str:
        """What the server is, without secrets: the command line or the URL."""
        if self.transport == Transport.STDIO:
            return " ".join([self.command, *[str(arg) for arg in self.args]])
        return self.url


class CapabilitySnapshotQuerySet(models.QuerySet["CapabilitySnapshot"]):
    def latest_for(self, server: Server) -> CapabilitySnapshot | None:
        return self.filter(server=server).order_by("-discovered_at", "-id").first()


class CapabilitySnapshot(models.Model):
    """What a server offered at one discovery. A new row only when something changed, so the rows are its history."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="snapshots")
    discovered_at = models.DateTimeField()
    last_confirmed_at = models.DateTimeField(help_text="The latest discovery that found exactly this.")
    protocol_version = models.CharField(max_length=32)
    server_info = models.JSONField(default=dict, blank=True)
    instructions = models.TextField(blank=True)
    capabilities = models.JSONField(default=dict, blank=True)
    tools = models.JSONField(default=list, blank=True)
    resources = models.JSONField(default=list, blank=True)
    resource_templates = models.JSONField(default=list, blank=True)
    prompts = models.JSONField(default=list, blank=True)
    # The lists that discovery's limits cut short or took entries out of, by field name ("tools"...): kept, seen,
    # more, reason, limit, setting, dropped..., message. Empty when everything the server listed was kept.
    truncation = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)

    objects = CapabilitySnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["-discovered_at", "-id"]
        indexes = [models.Index(fields=["server", "-discovered_at"])]

    def __str__(self) -> str:
        return f"{self.server} @ {self.discovered_at:%Y-%m-%d %H:%M:%S}"


class Capability(models.Model):
    """One tool, resource, template or prompt a server offers now: the index that capability lookups use."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="capabilities")
    snapshot = models.ForeignKey(CapabilitySnapshot, on_delete=models.CASCADE, related_name="entries")
    kind = models.CharField(max_length=20, choices=CapabilityKind.choices)
    name = models.CharField(max_length=300)
    # The URI for a resource, the URI template for a template, otherwise the name.
    identifier = models.CharField(max_length=1000)
    title = models.CharField(max_length=300, blank=True)
    description = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "capabilities"
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(fields=["server", "kind", "identifier"], name="unique_capability_per_server"),
        ]
        indexes = [models.Index(fields=["name"]), models.Index(fields=["identifier"])]

    def __str__(self) -> str:
        return f"{self.server}: {self.kind} {self.name}"


class StatusChangeQuerySet(models.QuerySet["StatusChange"]):
    def recent_for(self, server: Server, limit: int = 50) -> StatusChangeQuerySet:
        return self.filter(server=server).order_by("-at", "-id")[:limit]


class StatusChange(models.Model):
    """One status transition of a server: the history behind `Server.status`, written in the same transaction."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, choices=ServerStatus.choices)
    to_status = models.CharField(max_length=16, choices=ServerStatus.choices)
    reason = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField()
    source = models.CharField(max_length=32, help_text="Who decided: supervisor, health, an operator...")

    objects = StatusChangeQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["server", "-at"])]

    def __str__(self) -> str:
        return f"{self.server}: {self.from_status} -> {self.to_status}"


class CallRecordQuerySet(models.QuerySet["CallRecord"]):
    def recent_for(self, server: Server, limit: int = 50) -> CallRecordQuerySet:
        return self.filter(server=server).order_by("-started_at")[:limit]

    def older_than(self, moment: datetime) -> CallRecordQuerySet:
        return self.filter(started_at__lt=moment)


class CallRecord(models.Model):
    """One request to a server through the connection layer: what health and the load balancer read."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="calls")
    operation = models.CharField(max_length=64)
    target_name = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField()
    latency_ms = models.FloatField()
    ok = models.BooleanField()
    error_kind = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    caller = models.CharField(max_length=150, blank=True, help_text="A user name, or the component that asked.")
    correlation_id = models.CharField(max_length=100, blank=True)

    objects = CallRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["server", "-started_at"]),
            models.Index(fields=["started_at"]),
            models.Index(fields=["correlation_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.server} {self.operation} {'ok' if self.ok else self.error_kind}"


class OAuthGrant(models.Model):
    """What a server's authorization left us: tokens and the client registered with the authorization server, all
    encrypted at rest (registry/oauth_crypto.py), read and written only by registry/oauth_store.py."""

    server = models.OneToOneField(Server, on_delete=models.CASCADE, related_name="oauth_grant")
    access_token = models.TextField(blank=True, editable=False)  # encrypted
    refresh_token = models.TextField(blank=True, editable=False)  # encrypted
    token_type = models.CharField(max_length=32, blank=True, editable=False)
    scope = models.TextField(blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The client a dynamic registration or a metadata document gave us (JSON, encrypted: it may hold a secret).
    client_info = models.TextField(blank=True, editable=False)
    # Why a person must authorize again ("" while the grant is good).
    needs_authorization = models.CharField(max_length=300, blank=True, editable=False)
    authorized_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"OAuth grant of {self.server_id}"
