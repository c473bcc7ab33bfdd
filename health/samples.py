"""Samples on their way to the database: taken on the fleet loop as plain tuples, written in batches by the
monitor's database thread with one prepared statement.

Hundreds of checks a second each leave a sample: a model instance each (built on the fleet loop) and
`bulk_create` (which walks every field of every instance) cost more CPU than the check's own protocol work.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from django.db import connection, transaction

from health.models import HealthSample
from registry.models import Server

COLUMNS = ("server_id", "at", "kind", "ok", "latency_ms", "tool", "error", "in_maintenance")


class PendingSample(NamedTuple):
    server_id: int
    at: datetime
    kind: str
    ok: bool
    latency_ms: float | None
    tool: str
    error: str
    in_maintenance: bool


def samples_record(samples: list[PendingSample]) -> int:
    """Insert the samples of servers that still exist (one deleted since its check takes its samples with it);
    returns how many were written."""
    if not samples:
        return 0
    alive = set(Server.objects.filter(pk__in={s.server_id for s in samples}).values_list("pk", flat=True))
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (s.server_id, adapt(s.at), s.kind, s.ok, s.latency_ms, s.tool[:200], s.error[:500], s.in_maintenance)
        for s in samples
        if s.server_id in alive
    ]
    if not rows:
        return 0
    quote = connection.ops.quote_name
    columns = ", ".join(quote(HealthSample._meta.get_field(name).column) for name in COLUMNS)
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    statement = f"INSERT INTO {quote(HealthSample._meta.db_table)} ({columns}) VALUES ({placeholders})"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(statement, rows)
    return len(rows)
