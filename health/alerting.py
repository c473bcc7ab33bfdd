"""Alert rules evaluated against the fleet, alerts kept through their life, and notifications planned the way
Alertmanager does it: grouped per rule, the first notification of a group after `group_wait`, later changes at most
every `group_interval`, an unchanged firing group again after `repeat_interval` (not once acknowledged).

Everything is in the database (alerts with what was last notified of them, deliveries as an outbox written in the
same transaction), so a restart neither loses nor repeats a notification. Synchronous: the monitor runs
`evaluate` in its database thread every HEALTH_ALERT_EVALUATION_SECONDS.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from health.config import check_config
from health.models import (
    Alert,
    AlertRule,
    AlertState,
    HealthSample,
    NotificationChannel,
    NotificationDelivery,
    RuleKind,
    SampleKind,
    Severity,
    Silence,
)
from health.rollups import percentile
from health.selectors import trend_inputs
from health.trends import fit, predict_crossing
from registry.models import CapabilitySnapshot, Server, ServerStatus

logger = logging.getLogger(__name__)

SEVERITY_ORDER = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
NOT_WATCHED = {ServerStatus.MAINTENANCE, ServerStatus.DISABLED}


@dataclass(frozen=True)
class Condition:
    holds: bool
    summary: str = ""
    value: float | None = None


def rule_servers(rule: AlertRule, servers: list[Server], tags: dict[int, tuple[str, ...]]) -> list[Server]:
    chosen = []
    for server in servers:
        if rule.servers and server.name not in rule.servers:
            continue
        if rule.server_type and server.server_type != rule.server_type:
            continue
        if rule.tag and rule.tag not in tags.get(server.pk, ()):
            continue
        chosen.append(server)
    return chosen


def conditions(rule: AlertRule, servers: list[Server], now: datetime) -> dict[int, Condition]:
    """Each server's condition under one rule, from one query per rule (not one per server)."""
    if rule.kind not in RuleKind.values:
        # Only a row written around the API and the admin (which check the kind) gets here; it is reported on the
        # rule rather than silently never firing.
        raise ValueError(f"unknown rule kind {rule.kind!r}")
    found: dict[int, Condition] = {}
    if not servers:
        return found  # an empty scope is valid: it matches nothing, and needs no query
    ids = [server.pk for server in servers]
    since = now - timedelta(seconds=rule.window_seconds)
    if rule.kind == RuleKind.DOWN:
        for server in servers:
            down = server.status in (ServerStatus.OFFLINE, ServerStatus.UNHEALTHY)
            found[server.pk] = Condition(down, f"{server.name} is {server.status}: {server.status_reason}"[:500], None)
    elif rule.kind in (RuleKind.AVAILABILITY, RuleKind.ERROR_RATE):
        probes = rule.kind == RuleKind.AVAILABILITY
        kinds = [SampleKind.PROBE] if probes else [SampleKind.SYNTHETIC, SampleKind.PASSIVE]
        rows = (
            HealthSample.objects.filter(server_id__in=ids, at__gte=since, kind__in=kinds, in_maintenance=False)
            .values("server_id")
            .annotate(total=Count("id"), good=Count("id", filter=Q(ok=True)))
        )
        by_server = {row["server_id"]: row for row in rows}
        threshold = rule.threshold if rule.threshold is not None else (0.99 if probes else 0.1)
        for server in servers:
            row = by_server.get(server.pk)
            if not row or not row["total"]:
                found[server.pk] = Condition(False)
                continue
            ratio = row["good"] / row["total"]
            if probes:
                found[server.pk] = Condition(
                    ratio < threshold, f"{server.name}: availability {ratio:.2%} under {threshold:.2%}", ratio
                )
            else:
                errors = 1 - ratio
                found[server.pk] = Condition(
                    errors > threshold, f"{server.name}: {errors:.1%} of calls failed (over {threshold:.1%})", errors
                )
    elif rule.kind == RuleKind.LATENCY:
        latencies: defaultdict[int, list[float]] = defaultdict(list)
        for server_id, latency in HealthSample.objects.filter(
            server_id__in=ids, at__gte=since, kind=SampleKind.PROBE, ok=True, latency_ms__isnull=False
        ).values_list("server_id", "latency_ms"):
            latencies[server_id].append(latency)
        threshold = rule.threshold if rule.threshold is not None else 1_000.0
        for server in servers:
            p95 = percentile(sorted(latencies.get(server.pk, [])), 0.95)
            holds = p95 is not None and p95 > threshold
            found[server.pk] = Condition(
                holds, f"{server.name}: latency p95 {p95 or 0:.0f} ms over {threshold:.0f} ms", p95
            )
    elif rule.kind == RuleKind.PREDICTED_BREACH:
        series = trend_inputs(ids, now)
        for server in servers:
            xs, ys = series.get(server.pk, ([], []))
            target = (
                rule.threshold
                or check_config(
                    server_id=server.pk, name=server.name, metadata=server.metadata
                ).policy.latency_target_ms
            )
            crossing = predict_crossing(fit(xs, ys), target, now.timestamp(), rule.horizon_seconds)
            if crossing is None:
                found[server.pk] = Condition(False)
                continue
            when = datetime.fromtimestamp(crossing.earliest, tz=now.tzinfo)
            found[server.pk] = Condition(
                True,
                f"{server.name}: latency predicted to reach {target:.0f} ms from {when:%H:%M:%S} "
                f"(most likely {datetime.fromtimestamp(crossing.at, tz=now.tzinfo):%H:%M:%S})",
                crossing.at - now.timestamp(),
            )
    elif rule.kind == RuleKind.CAPABILITY_DRIFT:
        for server in servers:
            recent = list(CapabilitySnapshot.objects.filter(server=server).order_by("-discovered_at", "-id")[:2])
            if len(recent) < 2 or recent[0].discovered_at < since:
                found[server.pk] = Condition(False)
                continue
            parts = tool_drift(recent[1].tools, recent[0].tools)
            found[server.pk] = Condition(bool(parts), f"{server.name}: {'; '.join(parts)}"[:500], None)
    return found


def tool_drift(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """What changed in a server's tools: appeared, disappeared, or the same name with another schema."""

    def schemas(tools: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            str(tool.get("name")): (
                tool.get("inputSchema", tool.get("input_schema")),
                tool.get("outputSchema", tool.get("output_schema")),
            )
            for tool in tools
        }

    old, new = schemas(before), schemas(after)
    parts = []
    if appeared := sorted(new.keys() - old.keys()):
        parts.append(f"tool appeared: {', '.join(appeared)}")
    if gone := sorted(old.keys() - new.keys()):
        parts.append(f"tool disappeared: {', '.join(gone)}")
    if changed := sorted(name for name in new.keys() & old.keys() if new[name] != old[name]):
        parts.append(f"tool schema changed: {', '.join(changed)}")
    return parts


def _silenced(alert: Alert, silences: list[Silence]) -> bool:
    return any(
        (silence.rule_id in (None, alert.rule_id)) and (silence.server_id in (None, alert.server_id))
        for silence in silences
    )


def evaluate(now: datetime | None = None) -> list[dict[str, Any]]:
    """One round: alerts opened, fired, resolved; notifications planned. Returns the changes, for the bus.

    Each rule on its own: a rule that cannot be evaluated is reported on the rule (`last_error`) and in the changes
    (`rule_error`, once per new error), its alerts are left as they were, and the other rules go on."""
    now = now or timezone.now()
    changes: list[dict[str, Any]] = []
    rules = list(AlertRule.objects.filter(enabled=True))
    open_alerts: defaultdict[int, dict[int, Alert]] = defaultdict(dict)  # rule id -> server id -> alert
    for alert in Alert.objects.exclude(state=AlertState.RESOLVED).select_related("rule", "server"):
        open_alerts[alert.rule_id][alert.server_id] = alert
    # Every couple of seconds over the whole fleet: the servers only when a rule needs them, their tags in one query.
    enabled = Server.objects.enabled()
    servers = list(enabled) if rules else []
    tags = enabled.tag_names() if any(rule.tag for rule in rules) else {}
    for rule in rules:
        mine = open_alerts.pop(rule.pk, {})
        try:
            found = _evaluate_rule(rule, servers, tags, mine, now)
        except Exception as error:  # noqa: BLE001 - whatever one rule raises must not stop the others
            changes.extend(_rule_failed(rule, error, now))
            continue
        changes.extend(found)
        if rule.last_error:
            changes.append(_rule_recovered(rule))
    for alerts in open_alerts.values():  # their rule was disabled or deleted
        for alert in alerts.values():
            changes.append(_resolve(alert, now, "no longer watched by this rule"))
    if rules:
        AlertRule.objects.filter(pk__in=[rule.pk for rule in rules]).update(last_evaluated_at=now)
    plan_notifications(now)
    return changes


def _evaluate_rule(
    rule: AlertRule,
    servers: list[Server],
    tags: dict[int, tuple[str, ...]],
    open_alerts: dict[int, Alert],
    now: datetime,
) -> list[dict[str, Any]]:
    """One rule's round. Raises whatever its evaluation raises, having written nothing (see `evaluate`)."""
    chosen = rule_servers(rule, servers, tags)
    found = conditions(rule, [server for server in chosen if server.status not in NOT_WATCHED], now)
    if not open_alerts and not any(condition.holds for condition in found.values()):
        return []  # nothing to write, so no transaction (on SQLite each one takes the write lock)
    changes: list[dict[str, Any]] = []
    # All of the rule's writes or none: a failure halfway leaves no alert changed without its event.
    with transaction.atomic():
        for server in chosen:
            condition = found.get(server.pk, Condition(False))
            change = _advance(rule, server, open_alerts.pop(server.pk, None), condition, now)
            if change is not None:
                changes.append(change)
        for alert in open_alerts.values():  # its server left the rule's scope
            changes.append(_resolve(alert, now, "no longer watched by this rule"))
    return changes


def _rule_failed(rule: AlertRule, error: Exception, now: datetime) -> list[dict[str, Any]]:
    """Keep the error on the rule. A new one (the rule had none, or one of another kind) is logged with its
    traceback and told once; the same failure round after round is not, so the log and the bus do not fill up."""
    kind = type(error).__name__
    text = (f"{kind}: {error}" if str(error) else kind)[:500]
    new = not rule.last_error or rule.last_error.split(":", 1)[0] != kind
    if new:
        logger.warning("alert rule %r cannot be evaluated (the other rules go on): %s", rule.name, text, exc_info=True)
        rule.last_error_at = now
    else:
        logger.debug("alert rule %r still cannot be evaluated: %s", rule.name, text)
    if new or text != rule.last_error:
        rule.last_error = text
        AlertRule.objects.filter(pk=rule.pk).update(last_error=rule.last_error, last_error_at=rule.last_error_at)
    return [rule_event(rule, "rule_error")] if new else []


def _rule_recovered(rule: AlertRule) -> dict[str, Any]:
    logger.info("alert rule %r evaluates again (it failed since %s)", rule.name, rule.last_error_at)
    rule.last_error, rule.last_error_at = "", None
    AlertRule.objects.filter(pk=rule.pk).update(last_error="", last_error_at=None)
    return rule_event(rule, "rule_ok")


def rule_event(rule: AlertRule, what: str) -> dict[str, Any]:
    """A rule's evaluation failing (`rule_error`) or working again (`rule_ok`), for `health.alerts`; `server` is
    None: it is about the rule, not about one server."""
    return {
        "what": what,
        "rule_id": rule.pk,
        "rule": rule.name,
        "kind": rule.kind,
        "severity": rule.severity,
        "server": None,
        "error": rule.last_error,
        "error_at": rule.last_error_at.isoformat() if rule.last_error_at else None,
    }


def _advance(rule: AlertRule, server: Server, alert: Alert | None, condition: Condition, now: datetime) -> dict | None:
    if condition.holds:
        if alert is None:
            state = AlertState.FIRING if rule.for_seconds <= 0 else AlertState.PENDING
            alert = Alert.objects.create(
                rule=rule,
                server=server,
                state=state,
                summary=condition.summary[:500],
                value=condition.value,
                started_at=now,
                fired_at=now if state == AlertState.FIRING else None,
            )
            return alert_event(alert, "firing" if state == AlertState.FIRING else "pending")
        alert.summary, alert.value = condition.summary[:500], condition.value
        if alert.state == AlertState.PENDING and (now - alert.started_at).total_seconds() >= rule.for_seconds:
            alert.state, alert.fired_at = AlertState.FIRING, now
            alert.save(update_fields=["state", "fired_at", "summary", "value"])
            return alert_event(alert, "firing")
        alert.save(update_fields=["summary", "value"])
        return None
    if alert is None:
        return None
    if alert.state == AlertState.PENDING:
        alert.delete()  # never fired: nothing to resolve, nothing to tell
        return None
    return _resolve(alert, now, "")


def _resolve(alert: Alert, now: datetime, why: str) -> dict[str, Any]:
    alert.state, alert.resolved_at = AlertState.RESOLVED, now
    if why:
        alert.summary = f"{alert.summary} ({why})"[:500]
    alert.save(update_fields=["state", "resolved_at", "summary"])
    return alert_event(alert, "resolved")


def alert_event(alert: Alert, what: str) -> dict[str, Any]:
    return {"what": what, **alert_json(alert)}


def alert_json(alert: Alert) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": alert.pk,
        "rule": alert.rule.name,
        "kind": alert.rule.kind,
        "severity": alert.rule.severity,
        "server": alert.server.name,
        "state": alert.state,
        "summary": alert.summary,
        "value": alert.value,
        "started_at": iso(alert.started_at),
        "fired_at": iso(alert.fired_at),
        "resolved_at": iso(alert.resolved_at),
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": iso(alert.acknowledged_at),
    }


def plan_notifications(now: datetime) -> int:
    """Write the notifications that are due, one per rule group and channel, marking their alerts told."""
    planned = 0
    silences = list(Silence.objects.filter(starts_at__lte=now, ends_at__gt=now))
    channels = list(NotificationChannel.objects.filter(enabled=True))
    if not channels:
        return 0
    recent = now - timedelta(days=1)
    candidates = Alert.objects.filter(
        Q(state=AlertState.FIRING) | Q(state=AlertState.RESOLVED, resolved_at__gte=recent)
    )
    groups: defaultdict[int, list[Alert]] = defaultdict(list)
    for alert in candidates.select_related("rule", "server"):
        if not _silenced(alert, silences):
            groups[alert.rule_id].append(alert)
    for alerts in groups.values():
        rule = alerts[0].rule
        firing = [a for a in alerts if a.state == AlertState.FIRING]
        news = [
            a
            for a in alerts
            if (a.state == AlertState.FIRING and a.notified_state != "firing")
            or (a.state == AlertState.RESOLVED and a.notified_state == "firing")
        ]
        repeats = [
            a
            for a in firing
            if a.notified_state == "firing"
            and not a.acknowledged_at
            and a.last_notified_at is not None
            and (now - a.last_notified_at).total_seconds() >= rule.repeat_interval_seconds
        ]
        if not news and not repeats:
            continue
        told = [a.last_notified_at for a in alerts if a.last_notified_at is not None]
        last_sent = max(told) if told else None
        if news:
            first_change = min((a.resolved_at or a.fired_at or now) for a in news)
            ready = first_change + timedelta(seconds=rule.group_wait_seconds)
            if last_sent is not None:
                ready = max(ready, last_sent + timedelta(seconds=rule.group_interval_seconds))
            if now < ready:
                continue
        told_now = {a.pk: a for a in [*news, *repeats]}
        shown = list({a.pk: a for a in [*firing, *news]}.values())
        payload = {
            "version": 1,
            "group": rule.name,
            "status": "firing" if any(a.state == AlertState.FIRING for a in shown) else "resolved",
            "severity": rule.severity,
            "sent_at": now.isoformat(),
            "alerts": [alert_json(a) for a in shown],
        }
        targets = [c for c in channels if SEVERITY_ORDER[rule.severity] >= SEVERITY_ORDER[c.min_severity]]
        with transaction.atomic():
            for channel in targets:
                NotificationDelivery.objects.create(channel=channel, rule=rule, payload=payload, next_attempt_at=now)
                planned += 1
            for alert in told_now.values():
                alert.notified_state = "firing" if alert.state == AlertState.FIRING else "resolved"
                alert.last_notified_at = now
                alert.save(update_fields=["notified_state", "last_notified_at"])
    return planned


def acknowledge(alert: Alert, by: str) -> Alert:
    if not alert.acknowledged_at:
        alert.acknowledged_by, alert.acknowledged_at = by, timezone.now()
        alert.save(update_fields=["acknowledged_by", "acknowledged_at"])
    return alert
