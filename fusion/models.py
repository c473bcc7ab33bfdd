"""Fusion runs (every question asked, with its explanation) and the trust each source has earned."""

from __future__ import annotations

from django.db import models

from registry.models import Server


class FusionRunQuerySet(models.QuerySet["FusionRun"]):
    def recent(self) -> FusionRunQuerySet:
        return self.order_by("-created_at", "-id")


class FusionRun(models.Model):
    """One fused answer: the query, what every source said, what was done with it, and why."""

    created_at = models.DateTimeField(db_index=True)
    caller = models.CharField(max_length=150, blank=True)
    tool = models.CharField(max_length=300, blank=True)
    resource = models.CharField(max_length=1000, blank=True)
    arguments = models.JSONField(default=dict, blank=True)
    query = models.JSONField(default=dict, help_text="The normalised query (what the cache key is made of).")
    strategy = models.CharField(max_length=64)
    options = models.JSONField(default=dict, blank=True)
    fields = models.JSONField(default=list, blank=True)
    quorum = models.PositiveIntegerField()
    quorum_met = models.BooleanField()
    value = models.JSONField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    sources = models.JSONField(default=list, help_text="Per source: state, value, latency, age, reason.")
    explanation = models.JSONField(default=dict, help_text="Method, exclusions, figures, trust updates.")
    sources_asked = models.PositiveIntegerField(default=0)
    sources_used = models.PositiveIntegerField(default=0)
    duration_ms = models.FloatField()
    cache_key = models.CharField(max_length=80, blank=True)

    objects = FusionRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tool", "-created_at"]), models.Index(fields=["strategy", "-created_at"])]

    def __str__(self) -> str:
        subject = self.tool or self.resource
        return f"#{self.pk} {subject} by {self.strategy} ({'ok' if self.quorum_met else 'no quorum'})"


class SourceTrust(models.Model):
    """How far a server's answers to one question (a tool or a resource) have agreed with the consensus.

    Learns with every fused run (an exponential moving average of agreement) and relaxes back to the prior while a
    source is not heard from, so an old mistake does not follow a server forever.
    """

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="fusion_trust")
    subject = models.CharField(max_length=1000, help_text="tool:<name> or resource:<uri>")
    score = models.FloatField()
    observations = models.PositiveIntegerField(default=0)
    agreements = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["server", "subject"], name="unique_trust_per_server_subject")]
        ordering = ["server__name", "subject"]

    def __str__(self) -> str:
        return f"{self.server.name} {self.subject}: {self.score:.2f}"
