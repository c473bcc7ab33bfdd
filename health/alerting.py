"""Alert rules evaluated against the fleet, alerts kept through their life, and notifications planned the way
Alertmanager does it: grouped per rule, the first notification of a group after `group_wait`, later changes at most
every `group_interval`, an unchanged firing group again after `repeat_interval` (not once acknowledged).

Alerts worth reading: a rule does not fire on less data than it needs (a prediction wants a minimum window and a
significant slope); a flapping server is one open alert under the down rule for as long as it flaps (the monitor
decides flapping, health/flapping.py, and says so in the status); an alert keeps the `cause` it fired with and says
how it resolved (`resolution`); notifications group by rule and server type; silenced alerts are marked and send
nothing.

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

from health import trends
from health.config import check_config
from health.flapping import FLAPPING_PREFIX, is_flapping_reason
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
from health.trends import fit, predict_crossing, trend
from registry.models import CapabilitySnapshot, Server, ServerStatus

logger = logging.getLogger(__name__)

SEVERITY_ORDER = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
NOT_WATCHED = {ServerStatus.MAINTENANCE, ServerStatus.DISABLED}
DOWN_STATUSES = {ServerStatus.OFFLINE, ServerStatus.UNHEALTHY}


@dataclass(frozen=True)
class Condition:
    holds: bool
    summary: str = ""
    value: float | None = None
    # When it does not hold: why, for an alert it resolves ("recovered: ...", "too little data: ...").
    recovered: str = ""


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
            if is_flapping_reason(server.status_reason) and server.status not in DOWN_STATUSES:
                # One open alert while it flaps, whatever each cycle does (the monitor keeps it degraded).
                found[server.pk] = Condition(True, f"{server.name} is {server.status_reason}"[:500], None)
                continue
            down = server.status in DOWN_STATUSES
            found[server.pk] = Condition(
                down,
                f"{server.name} is {server.status}: {server.status_reason}"[:500],
                None,
                f"recovered: now {server.status} ({server.status_reason})"[:300],
            )
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
                found[server.pk] = Condition(False, recovered="no data: nothing to judge in the window")
                continue
            ratio = row["good"] / row["total"]
            if probes:
                found[server.pk] = Condition(
                    ratio < threshold,
                    f"{server.name}: availability {ratio:.2%} under {threshold:.2%}",
                    ratio,
                    f"recovered: availability {ratio:.2%} (target {threshold:.2%})",
                )
            else:
                errors = 1 - ratio
                found[server.pk] = Condition(
                    errors > threshold,
                    f"{server.name}: {errors:.1%} of calls failed (over {threshold:.1%})",
                    errors,
                    f"recovered: {errors:.1%} of calls failed (limit {threshold:.1%})",
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
                holds,
                f"{server.name}: latency p95 {p95 or 0:.0f} ms over {threshold:.0f} ms",
                p95,
                f"recovered: latency p95 {p95:.0f} ms (target {threshold:.0f} ms)"
                if p95 is not None
                else "no data: no successful check in the window",
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
            problem = trends.too_little_data(xs)
            if problem:
                found[server.pk] = Condition(False, f"{server.name}: {problem}", None, problem)
                continue
            line = fit(xs, ys)
            found_trend = trend(line)
            if found_trend is None or found_trend.direction != "degrading":
                # No significant, material rise (trends.trend): no prediction, whatever a noisy slope would reach.
                found[server.pk] = Condition(False, recovered="no longer predicted: latency is not rising")
                continue
            crossing = predict_crossing(line, target, now.timestamp(), rule.horizon_seconds)
            if crossing is None:
                found[server.pk] = Condition(
                    False, recovered=f"no longer predicted: not reaching {target:.0f} ms within the horizon"
                )
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
                found[server.pk] = Condition(False, recovered="no tool change in the window")
                continue
            parts = tool_drift(recent[1].tools, recent[0].tools)
            found[server.pk] = Condition(
                bool(parts), f"{server.name}: {'; '.join(parts)}"[:500], None, "no tool change in the window"
            )
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


def active_silences(now: datetime) -> list[Silence]:
    return list(Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).order_by("-ends_at", "-id"))


def silence_of(alert: Alert, silences: list[Silence]) -> Silence | None:
    """The silence that covers the alert (the one ending last), or None."""
    for silence in silences:
        if silence.rule_id in (None, alert.rule_id) and (
            silence.server_id is None or (alert.server_id is not None and silence.server_id == alert.server_id)
        ):
            return silence
    return None


def evaluate(now: datetime | None = None) -> list[dict[str, Any]]:
    """One round: alerts opened, fired, resolved; notifications planned. Returns the changes, for the bus.

    Each rule on its own: a rule that cannot be evaluated is reported on the rule (`last_error`) and in the changes
    (`rule_error`, once per new error), its alerts are left as they were, and the other rules go on."""
    now = now or timezone.now()
    changes: list[dict[str, Any]] = []
    silences = active_silences(now)
    rules = list(AlertRule.objects.filter(enabled=True))
    open_alerts: defaultdict[int, dict[int, Alert]] = defaultdict(dict)  # rule id -> server id -> alert
    for alert in Alert.objects.exclude(state=AlertState.RESOLVED).select_related("rule", "server"):
        if alert.server_id is None:  # its server was removed: nothing more to watch, the alert stays as history
            changes.append(_resolve(alert, now, "server removed", silences))
            continue
        open_alerts[alert.rule_id][alert.server_id] = alert
    # Every couple of seconds over the whole fleet: the servers only when a rule needs them, their tags in one query.
    enabled = Server.objects.enabled()
    servers = list(enabled) if rules or open_alerts else []
    tags = enabled.tag_names() if any(rule.tag for rule in rules) else {}
    for rule in rules:
        mine = open_alerts.pop(rule.pk, {})
        try:
            found = _evaluate_rule(rule, servers, tags, mine, now, silences)
        except Exception as error:  # noqa: BLE001 - whatever one rule raises must not stop the others
            changes.extend(_rule_failed(rule, error, now))
            continue
        changes.extend(found)
        if rule.last_error:
            changes.append(_rule_recovered(rule))
    for alerts in open_alerts.values():  # their rule was disabled (a deleted rule takes its alerts with it)
        for alert in alerts.values():
            changes.append(_resolve(alert, now, "rule disabled", silences))
    if rules:
        AlertRule.objects.filter(pk__in=[rule.pk for rule in rules]).update(last_evaluated_at=now)
    plan_notifications(now, silences)
    return changes


def _evaluate_rule(
    rule: AlertRule,
    servers: list[Server],
    tags: dict[int, tuple[str, ...]],
    open_alerts: dict[int, Alert],
    now: datetime,
    silences: list[Silence],
) -> list[dict[str, Any]]:
    """One rule's round. Raises whatever its evaluation raises, having written nothing (see `evaluate`)."""
    chosen = rule_servers(rule, servers, tags)
    found = conditions(rule, [server for server in chosen if server.status not in NOT_WATCHED], now)
    if not open_alerts and not any(condition.holds for condition in found.values()):
        return []  # nothing to write, so no transaction (on SQLite each one takes the write lock)
    enabled_ids = {server.pk for server in servers}
    changes: list[dict[str, Any]] = []
    # All of the rule's writes or none: a failure halfway leaves no alert changed without its event.
    with transaction.atomic():
        for server in chosen:
            condition = found.get(server.pk) or Condition(False, recovered=f"server in {server.status}")
            change = _advance(rule, server, open_alerts.pop(server.pk, None), condition, now, silences)
            if change is not None:
                changes.append(change)
        for alert in open_alerts.values():
            why = "server disabled" if alert.server_id not in enabled_ids else "server no longer in the rule's scope"
            changes.append(_resolve(alert, now, why, silences))
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


def _advance(
    rule: AlertRule,
    server: Server,
    alert: Alert | None,
    condition: Condition,
    now: datetime,
    silences: list[Silence],
) -> dict | None:
    if condition.holds:
        summary = condition.summary[:500]
        if alert is None:
            state = AlertState.FIRING if rule.for_seconds <= 0 else AlertState.PENDING
            alert = Alert.objects.create(
                rule=rule,
                server=server,
                server_name=server.name,
                state=state,
                summary=summary,
                cause=summary if state == AlertState.FIRING else "",
                value=condition.value,
                started_at=now,
                fired_at=now if state == AlertState.FIRING else None,
            )
            return alert_event(alert, "firing" if state == AlertState.FIRING else "pending", silences)
        alert.summary, alert.value = summary, condition.value
        if alert.state == AlertState.PENDING and (now - alert.started_at).total_seconds() >= rule.for_seconds:
            alert.state, alert.fired_at, alert.cause = AlertState.FIRING, now, summary
            alert.save(update_fields=["state", "fired_at", "summary", "cause", "value"])
            return alert_event(alert, "firing", silences)
        alert.save(update_fields=["summary", "value"])
        return None
    if alert is None:
        return None
    if alert.state == AlertState.PENDING:
        alert.delete()  # never fired: nothing to resolve, nothing to tell
        return None
    resolution = condition.recovered or "recovered"
    if FLAPPING_PREFIX in alert.summary:
        resolution = "stable again: " + resolution.removeprefix("recovered: ")
    return _resolve(alert, now, resolution, silences)


def _resolve(alert: Alert, now: datetime, resolution: str, silences: list[Silence] | None = None) -> dict[str, Any]:
    """Resolve an open alert: its summary and cause stay (what it was about), `resolution` says how it ended."""
    alert.state, alert.resolved_at, alert.resolution = AlertState.RESOLVED, now, resolution[:300]
    alert.save(update_fields=["state", "resolved_at", "resolution"])
    return alert_event(alert, "resolved", silences)


def alert_event(alert: Alert, what: str, silences: list[Silence] | None = None) -> dict[str, Any]:
    return {"what": what, **alert_json(alert, silences)}


def alert_json(alert: Alert, silences: list[Silence] | None = None) -> dict[str, Any]:
    """An alert as the API and the health.alerts events show it (health.alerts_api.AlertSerializer declares it).
    `silences`: the active ones, when the caller has them (a list answers many alerts with one query)."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    if silences is None:
        silences = active_silences(timezone.now())
    silence = silence_of(alert, silences)
    server = alert.server
    return {
        "id": alert.pk,
        "rule": alert.rule.name,
        "rule_id": alert.rule_id,
        "kind": alert.rule.kind,
        "severity": alert.rule.severity,
        "server": alert.server_name or (server.name if server is not None else ""),
        "server_type": server.server_type if server is not None else "",
        "state": alert.state,
        "summary": alert.summary,
        "cause": alert.cause,
        "resolution": alert.resolution,
        "flapping": FLAPPING_PREFIX in alert.summary,
        "value": alert.value,
        "started_at": iso(alert.started_at),
        "fired_at": iso(alert.fired_at),
        "resolved_at": iso(alert.resolved_at),
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": iso(alert.acknowledged_at),
        "silenced": silence is not None,
        "silenced_by": {
            "id": silence.pk,
            "ends_at": iso(silence.ends_at),
            "comment": silence.comment,
            "created_by": silence.created_by,
        }
        if silence is not None
        else None,
    }


def group_key(alert: Alert) -> tuple[int, str]:
    """Alertmanager's group_by: rule and server type (a removed server's alerts group under no type)."""
    return alert.rule_id, alert.server.server_type if alert.server is not None else ""


def plan_notifications(now: datetime, silences: list[Silence] | None = None) -> int:
    """Write the notifications that are due, one per group (rule and server type) and channel, marking their alerts
    told. A silenced alert is left out: it sends nothing, and its group only what its other alerts need."""
    planned = 0
    silences = active_silences(now) if silences is None else silences
    channels = list(NotificationChannel.objects.filter(enabled=True))
    if not channels:
        return 0
    recent = now - timedelta(days=1)
    candidates = Alert.objects.filter(
        Q(state=AlertState.FIRING) | Q(state=AlertState.RESOLVED, resolved_at__gte=recent)
    )
    groups: defaultdict[tuple[int, str], list[Alert]] = defaultdict(list)
    for alert in candidates.select_related("rule", "server"):
        if silence_of(alert, silences) is None:
            groups[group_key(alert)].append(alert)
    for (_rule_id, server_type), alerts in groups.items():
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
            "group_by": {"rule": rule.name, "server_type": server_type},
            "status": "firing" if any(a.state == AlertState.FIRING for a in shown) else "resolved",
            "severity": rule.severity,
            "sent_at": now.isoformat(),
            "alerts": [alert_json(a, silences) for a in shown],
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
