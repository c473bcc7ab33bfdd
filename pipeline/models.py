"""Event history on the embedded default (the database). With REDIS_URL set, history lives in Redis Streams."""

from __future__ import annotations

from django.db import models


class StoredEvent(models.Model):
    stream = models.CharField(max_length=200)
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=64)
    server = models.CharField(max_length=100, blank=True)
    at = models.DateTimeField()
    payload = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["stream", "seq"], name="stored_event_stream_seq")]
        indexes = [models.Index(fields=["stream", "at"], name="stored_event_stream_at")]
        ordering = ["stream", "seq"]

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq} {self.kind}"
