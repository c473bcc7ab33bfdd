"""What the health monitor keeps: check samples with their rollups, and maintenance windows."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models

from registry.models import Server


class SampleKind(models.TextChoices):
    PROBE = "probe", "Liveness probe"
    SYNTHETIC = "synthetic", "Synthetic tool call"
    PASSIVE = "passive", "A real call"


class HealthSample(models.Model):
    """One check (or one real call's outcome). Raw samples are kept for HEALTH_RAW_RETENTION_SECONDS."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="health_samples")
    at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=SampleKind.choices)
    ok = models.BooleanField()
    latency_ms = models.FloatField(null=True, blank=True)
    tool = models.CharField(max_length=200, blank=True, help_text="The tool of a synthetic or real call.")
    error = models.CharField(max_length=500, blank=True)
    in_maintenance = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["server", "at"], name="health_sample_server_at"),
            models.Index(fields=["at"], name="health_sample_at"),
        ]
        ordering = ["at"]


class Resolution(models.TextChoices):
    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"


class HealthRollup(models.Model):
    """Checks of one server over one minute or hour: counts and latency figures, so long ranges stay cheap."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="health_rollups")
    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    start = models.DateTimeField()
    checks = models.IntegerField()
    ok = models.IntegerField()
    in_maintenance = models.IntegerField(default=0)
    calls = models.IntegerField(default=0, help_text="Real calls (passive samples) in the bucket.")
    calls_ok = models.IntegerField(default=0)
    latency_p50_ms = models.FloatField(null=True)
    latency_p95_ms = models.FloatField(null=True)
    latency_p99_ms = models.FloatField(null=True)
    latency_max_ms = models.FloatField(null=True)
    latency_sum_ms = models.FloatField(default=0.0)
    latency_count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["server", "resolution", "start"], name="health_rollup_bucket"),
        ]
        indexes = [models.Index(fields=["resolution", "start"], name="health_rollup_resolution_start")]
        ordering = ["start"]


class Recurrence(models.TextChoices):
    NONE = "none", "Once"
    DAILY = "daily", "Every day"
    WEEKLY = "weekly", "Every week"


class MaintenanceWindow(models.Model):
    """While a window is open its servers are in maintenance: no alerts, left out of availability."""

    name = models.CharField(max_length=200)
    servers = models.ManyToManyField(Server, blank=True, related_name="maintenance_windows")
    server_type = models.CharField(max_length=64, blank=True, help_text="Or every server of this type.")
    tag = models.CharField(max_length=64, blank=True, help_text="Or every server with this tag.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    recurrence = models.CharField(max_length=8, choices=Recurrence.choices, default=Recurrence.NONE)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["starts_at"]

    def __str__(self) -> str:
        return self.name

    def is_open(self, moment: datetime) -> bool:
        """Whether `moment` falls in the window (or in one of its daily or weekly repeats)."""
        length = self.ends_at - self.starts_at
        if self.recurrence == Recurrence.NONE or moment < self.starts_at:
            return self.starts_at <= moment < self.ends_at
        period = timedelta(days=1) if self.recurrence == Recurrence.DAILY else timedelta(weeks=1)
        offset = (moment - self.starts_at) % period
        return offset < length


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class RuleKind(models.TextChoices):
    DOWN = "down", "Server down (offline or unhealthy) or flapping between up and down"
    LATENCY = "latency", "Latency p95 over a target (ms)"
    AVAILABILITY = "availability", "Availability under a target (0-1)"
    ERROR_RATE = "error_rate", "Error rate of calls over a target (0-1)"
    PREDICTED_BREACH = "predicted_breach", "Latency predicted to cross its target within the horizon"
    CAPABILITY_DRIFT = "capability_drift", "A tool appeared, disappeared or changed its schema"


class AlertRule(models.Model):
    """When to alert, about which servers, and how often to say so (Alertmanager's grouping and intervals)."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=RuleKind.choices)
    threshold = models.FloatField(null=True, blank=True, help_text="ms for latency; a fraction for the others.")
    window_seconds = models.FloatField(default=300.0, help_text="The window availability and error rate look at.")
    horizon_seconds = models.FloatField(default=3600.0, help_text="How far ahead a predicted breach counts.")
    servers = models.JSONField(default=list, blank=True, help_text="Server names; empty: every server.")
    server_type = models.CharField(max_length=64, blank=True)
    tag = models.CharField(max_length=64, blank=True)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.WARNING)
    for_seconds = models.FloatField(default=0.0, help_text="How long the condition must hold before firing.")
    group_wait_seconds = models.FloatField(default=5.0)
    group_interval_seconds = models.FloatField(default=60.0)
    repeat_interval_seconds = models.FloatField(default=4 * 3600.0)
    enabled = models.BooleanField(default=True)
    # Written by the alert rounds only (never through the API or the admin): a rule that cannot be evaluated is
    # reported here while the other rules go on.
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(
        max_length=500, blank=True, editable=False, help_text="Why the last round could not evaluate this rule."
    )
    last_error_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Since when the rule fails (cleared once it evaluates)."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AlertState(models.TextChoices):
    PENDING = "pending", "Pending"  # the condition holds, not yet for `for_seconds`
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """One rule's condition on one server, from the moment it held to the moment it stopped holding."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    # Kept when the server is removed (its alerts resolve as "server removed" and stay in the history by name).
    server = models.ForeignKey(Server, null=True, on_delete=models.SET_NULL, related_name="alerts")
    server_name = models.CharField(max_length=100, help_text="The server's name when the alert opened.")
    state = models.CharField(max_length=8, choices=AlertState.choices)
    summary = models.CharField(max_length=500, help_text="What holds now (updated while the alert is open).")
    cause = models.CharField(max_length=500, blank=True, help_text="The summary when it fired, kept.")
    resolution = models.CharField(max_length=300, blank=True, help_text="How it resolved.")
    value = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # What the channels were last told of this alert ("" nothing yet, "firing", "resolved") and when.
    notified_state = models.CharField(max_length=8, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # At most one open alert per rule and server: no duplicates, also across restarts.
            models.UniqueConstraint(
                fields=["rule", "server"],
                condition=~models.Q(state="resolved"),
                name="alert_one_open_per_rule_and_server",
            )
        ]
        indexes = [models.Index(fields=["state", "started_at"], name="alert_state_started")]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.rule.name} on {self.server_name} ({self.state})"


class Silence(models.Model):
    """Alerts that match are not notified until `ends_at` (they still fire and show)."""

    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.CASCADE, related_name="silences")
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.CASCADE, related_name="silences")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    comment = models.CharField(max_length=500, blank=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-ends_at"]

    def __str__(self) -> str:
        scope = " on ".join(str(part) for part in (self.rule, self.server) if part is not None) or "every alert"
        return f"silence of {scope} until {self.ends_at:%Y-%m-%d %H:%M}"


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (POST, HMAC-SHA256 signed)"
    CALLABLE = "callable", "Python callable named in settings"


class NotificationChannel(models.Model):
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=8, choices=ChannelKind.choices)
    url = models.URLField(max_length=1000, blank=True)
    secret = models.CharField(max_length=200, blank=True, help_text="Secret: signs webhook bodies; never shown back.")
    callable_name = models.CharField(max_length=100, blank=True, help_text="A key of HEALTH_ALERT_CALLABLES.")
    min_severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.INFO)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class NotificationDelivery(models.Model):
    """One notification to one channel (an outbox row written with the alerts it tells of), with every attempt."""

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    rule = models.ForeignKey(AlertRule, null=True, on_delete=models.SET_NULL, related_name="deliveries")
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    log = models.JSONField(default=list, help_text="Every attempt: time, status code or error.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_state_next")]
        ordering = ["-created_at"]
        verbose_name_plural = "notification deliveries"

    def __str__(self) -> str:
        return f"{self.channel} #{self.pk}: {self.state}"
