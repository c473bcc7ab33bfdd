"""Sending planned notifications: webhooks (JSON POST signed with HMAC-SHA256) and Python callables named in
settings, with retries and a log of every attempt on the delivery row.

Webhook requests go through the outbound address policy (OUTBOUND_ALLOWED_NETWORKS), checked at every connect.
The signature is `X-Orchestrator-Signature: sha256=<hex HMAC-SHA256 of the raw body with the channel's secret>`;
a receiver recomputes it over the body it got and compares in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx2
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from fleet.orm_worker import OrmWorker
from health.models import ChannelKind, DeliveryState, NotificationChannel, NotificationDelivery
from mcp_client.redaction import Redactor
from registry.validation import outbound_policy

SIGNATURE_HEADER = "X-Orchestrator-Signature"
BATCH = 50


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Due:
    delivery_id: int
    kind: str
    url: str
    secret: str
    callable_name: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None = None
    error: str = ""


def due_deliveries() -> list[Due]:
    rows = (
        NotificationDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=timezone.now())
        .select_related("channel")
        .order_by("next_attempt_at")[:BATCH]
    )
    return [
        Due(
            row.pk,
            row.channel.kind,
            row.channel.url,
            row.channel.secret,
            row.channel.callable_name,
            row.payload,
            row.attempts,
        )
        for row in rows
    ]


def record(delivery_id: int, attempt: Attempt) -> None:
    row = NotificationDelivery.objects.filter(pk=delivery_id).first()
    if row is None:
        return
    now = timezone.now()
    row.attempts += 1
    row.last_status_code = attempt.status_code
    row.last_error = attempt.error[:500]
    row.log = [*row.log, {"at": now.isoformat(), "status_code": attempt.status_code, "error": attempt.error[:300]}]
    if attempt.ok:
        row.state = DeliveryState.DELIVERED
    elif row.attempts >= settings.HEALTH_WEBHOOK_MAX_ATTEMPTS:
        row.state = DeliveryState.FAILED
    else:
        row.next_attempt_at = now + timedelta(seconds=min(60.0, 2.0 ** (row.attempts - 1)))
    row.save(update_fields=["attempts", "last_status_code", "last_error", "log", "state", "next_attempt_at"])


async def send(due: Due, client: httpx2.AsyncClient) -> Attempt:
    if due.kind == ChannelKind.CALLABLE:
        path = settings.HEALTH_ALERT_CALLABLES.get(due.callable_name)
        if path is None:
            return Attempt(False, error=f"no callable named {due.callable_name!r} in HEALTH_ALERT_CALLABLES")
        try:
            await asyncio.to_thread(import_string(path), due.payload)
        except Exception as error:  # the callable's failure is the delivery's, retried and logged
            return Attempt(False, error=f"{type(error).__name__}: {error}")
        return Attempt(True)
    body = encode(due.payload)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(due.secret, body),
        "X-Orchestrator-Delivery": str(due.delivery_id),
        "X-Orchestrator-Event": str(due.payload.get("status", "")),
    }
    try:
        response = await client.post(due.url, content=body, headers=headers)
    except Exception as error:
        # The secret is never in the URL or the error, but the redactor also keeps reply bodies out.
        return Attempt(False, error=Redactor([due.secret])(f"{type(error).__name__}: {error}", 300))
    if 200 <= response.status_code < 300:
        return Attempt(True, response.status_code)
    return Attempt(False, response.status_code, f"HTTP {response.status_code}")


async def deliver_due(db: OrmWorker) -> int:
    """Send every delivery that is due, concurrently; record each attempt."""
    due = await db.run(due_deliveries)
    if not due:
        return 0
    timeout = httpx2.Timeout(settings.HEALTH_WEBHOOK_TIMEOUT_SECONDS)
    async with outbound_policy().client(timeout=timeout) as client:
        attempts = await asyncio.gather(*(send(item, client) for item in due))
    for item, attempt in zip(due, attempts, strict=True):
        await db.run(record, item.delivery_id, attempt)
    return len(due)


def send_test(channel: NotificationChannel, *, requested_by: str) -> NotificationDelivery:
    """A test notification to one channel, sent now through the path alerts take (`send`: the signature, the
    outbound address policy, the redaction; `record`: the delivery log), once: its outcome is the answer.

    The row is written already claimed (its next attempt after the send's timeout), so the monitor's `deliver_due`
    does not send it a second time meanwhile; if this process dies mid-send, the monitor retries it later. A failed
    test is final (no retries): the person asking reads the outcome now and fixes the channel."""
    now = timezone.now()
    payload = {
        "version": 1,
        "group": "test",
        "status": "test",
        "severity": "info",
        "sent_at": now.isoformat(),
        "test": True,
        "requested_by": requested_by,
        "summary": f"A test notification to {channel.name!r}, sent from the orchestrator by {requested_by}.",
        "alerts": [],
    }
    claim = timedelta(seconds=settings.HEALTH_WEBHOOK_TIMEOUT_SECONDS + 30.0)
    row = NotificationDelivery.objects.create(channel=channel, payload=payload, next_attempt_at=now + claim)
    due = Due(row.pk, channel.kind, channel.url, channel.secret, channel.callable_name, payload, 0)
    attempt = async_to_sync(_send_one)(due)
    # One transaction: no reader sees the retry that `record` plans for a failure before it is made final.
    with transaction.atomic():
        record(row.pk, attempt)
        if not attempt.ok:
            NotificationDelivery.objects.filter(pk=row.pk).update(state=DeliveryState.FAILED)
    row.refresh_from_db()
    return row


async def _send_one(due: Due) -> Attempt:
    timeout = httpx2.Timeout(settings.HEALTH_WEBHOOK_TIMEOUT_SECONDS)
    async with outbound_policy().client(timeout=timeout) as client:
        return await send(due, client)
