"""Alerts in the API: the alerts themselves (viewers read, operators acknowledge); rules and silences (viewers read,
operators write, end and delete); channels and the delivery log (admins: channels hold secrets, so only admins see
them at all), with "send a test" to a channel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from health.alerting import acknowledge, active_silences, alert_event, alert_json
from health.ending import NotInForce, silence_end
from health.models import Alert, AlertRule, AlertState, NotificationChannel, NotificationDelivery, RuleKind, Silence
from health.notify import send_test
from pipeline.running import publish
from registry.models import Server
from registry.permissions import IsAdmin, IsOperator, IsViewer, ReadForViewersWriteForOperators
from registry.request_bodies import one_of, query_filters
from registry.validation import url_errors


class SilencedBySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ends_at = serializers.DateTimeField()
    comment = serializers.CharField(allow_blank=True)
    created_by = serializers.CharField(allow_blank=True)


class AlertSerializer(serializers.Serializer):
    """An alert as the API and the health.alerts events show it. Made by `alerting.alert_json`; declared here for
    the schema (a test keeps the two equal)."""

    id = serializers.IntegerField()
    rule = serializers.CharField(help_text="The rule's name.")
    rule_id = serializers.IntegerField(help_text="The rule's id (e.g. for a silence of it).")
    kind = serializers.CharField(help_text="The rule's kind.")
    severity = serializers.CharField()
    server = serializers.CharField(help_text="The server's name (kept when the server is removed).")
    server_type = serializers.CharField(allow_blank=True, help_text="Alerts group by rule and server type.")
    state = serializers.CharField(help_text=", ".join(AlertState.values))
    summary = serializers.CharField(help_text="What holds now (while open; the last state once resolved).")
    cause = serializers.CharField(allow_blank=True, help_text="The summary when it fired, kept after it resolves.")
    resolution = serializers.CharField(
        allow_blank=True, help_text='How it resolved, e.g. "recovered: now online (...)", "rule disabled".'
    )
    flapping = serializers.BooleanField(help_text="A down alert held open because its server flaps.")
    value = serializers.FloatField(allow_null=True, help_text="The figure that crossed the rule's threshold.")
    started_at = serializers.DateTimeField()
    fired_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.CharField(allow_blank=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    silenced = serializers.BooleanField(help_text="An active silence covers it: it sends nothing.")
    silenced_by = SilencedBySerializer(allow_null=True, help_text="The silence that covers it (ending last).")

    def to_representation(self, alert: Alert) -> dict[str, Any]:
        return alert_json(alert, self.context.get("silences"))


class AlertFilters(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=AlertState.values, required=False, allow_blank=True, error_messages=one_of(AlertState.values)
    )


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = AlertSerializer
    permission_classes = [IsViewer]
    lookup_value_regex = r"\d+"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        filters = query_filters(AlertFilters, self.request.query_params)
        return Alert.objects.select_related("rule", "server").filter(**filters).order_by("-started_at")

    def get_serializer_context(self) -> dict[str, Any]:
        # The active silences once per request, not once per alert.
        return {**super().get_serializer_context(), "silences": active_silences(timezone.now())}

    @extend_schema(parameters=[AlertFilters])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Acknowledge an alert (operators): no more repeat notifications",
        request=None,
        responses=AlertSerializer,
    )
    @action(detail=True, methods=["post"], permission_classes=[IsOperator])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        alert = acknowledge(self.get_object(), request.user.get_username())
        publish("health.alerts", "acknowledged", alert_event(alert, "acknowledged"), server=alert.server.name)
        return Response(alert_json(alert))


class AlertRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertRule
        fields = "__all__"

    def validate_servers(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            raise serializers.ValidationError("a list of server names")
        unknown = sorted(set(value) - set(Server.objects.filter(name__in=value).values_list("name", flat=True)))
        if unknown:
            raise serializers.ValidationError(f"no such server: {', '.join(unknown[:5])}")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind", getattr(self.instance, "kind", ""))
        threshold = attrs.get("threshold", getattr(self.instance, "threshold", None))
        if threshold is not None:
            # The threshold's unit is the kind's: milliseconds for latency, a fraction for the ratios.
            if kind in (RuleKind.LATENCY, RuleKind.PREDICTED_BREACH) and not 0 < threshold <= 3_600_000:
                raise serializers.ValidationError({"threshold": "milliseconds, more than 0 (at most an hour)"})
            if kind in (RuleKind.AVAILABILITY, RuleKind.ERROR_RATE) and not 0 <= threshold <= 1:
                raise serializers.ValidationError({"threshold": "a fraction from 0 to 1 (0.99 is 99 %)"})
        for field in (
            "window_seconds",
            "horizon_seconds",
            "for_seconds",
            "group_wait_seconds",
            "group_interval_seconds",
            "repeat_interval_seconds",
        ):
            if field in attrs and not 0 <= attrs[field] <= 30 * 24 * 3600:
                raise serializers.ValidationError({field: "must be from 0 to 2592000 seconds"})
        return attrs


class AlertRuleViewSet(viewsets.ModelViewSet):
    """Rules, each with `last_evaluated_at` and, while the alert rounds cannot evaluate it, `last_error` and
    `last_error_at` (read-only). `?failing=true` lists only those, `?failing=false` the others."""

    serializer_class = AlertRuleSerializer
    permission_classes = [ReadForViewersWriteForOperators]
    queryset = AlertRule.objects.all()

    def get_queryset(self):  # type: ignore[no-untyped-def]
        rows = super().get_queryset()
        failing = self.request.query_params.get("failing")
        if failing is not None:
            if failing not in ("true", "false"):
                raise serializers.ValidationError({"failing": "true or false"})
            rows = rows.exclude(last_error="") if failing == "true" else rows.filter(last_error="")
        return rows


class SilenceSerializer(serializers.ModelSerializer):
    rule = serializers.SlugRelatedField(
        slug_field="name", queryset=AlertRule.objects.all(), required=False, allow_null=True
    )
    server = serializers.SlugRelatedField(
        slug_field="name", queryset=Server.objects.all(), required=False, allow_null=True
    )

    duration_seconds = serializers.FloatField(
        write_only=True,
        required=False,
        min_value=60,
        max_value=365 * 24 * 3600,
        help_text="Instead of ends_at: how long from starts_at (e.g. 3600 for an hour).",
    )
    state = serializers.SerializerMethodField(help_text="upcoming, active or ended (by the server's clock).")

    class Meta:
        model = Silence
        fields = ["id", "rule", "server", "starts_at", "ends_at", "duration_seconds", "comment", "created_by", "state"]
        read_only_fields = ["created_by"]
        extra_kwargs = {"starts_at": {"required": False, "help_text": "Default: now."}, "ends_at": {"required": False}}

    def get_state(self, silence: Silence) -> str:
        now = timezone.now()
        return "upcoming" if silence.starts_at > now else "active" if silence.ends_at > now else "ended"

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None:
            attrs.setdefault("starts_at", timezone.now())
        starts = attrs.get("starts_at", getattr(self.instance, "starts_at", None))
        duration = attrs.pop("duration_seconds", None)
        if duration is not None:
            if "ends_at" in attrs:
                raise serializers.ValidationError({"duration_seconds": "give ends_at or duration_seconds, not both"})
            try:
                attrs["ends_at"] = starts + timedelta(seconds=duration)
            except OverflowError:  # a start near year 9999
                raise serializers.ValidationError({"duration_seconds": "ends after the year 9999"}) from None
        ends = attrs.get("ends_at", getattr(self.instance, "ends_at", None))
        if ends is None:
            raise serializers.ValidationError({"ends_at": "an end time (or duration_seconds) is required"})
        if starts and ends <= starts:
            raise serializers.ValidationError({"ends_at": "must be after starts_at"})
        return attrs


class SilenceViewSet(viewsets.ModelViewSet):
    """Silences: viewers read, operators make, end and delete them."""

    serializer_class = SilenceSerializer
    permission_classes = [ReadForViewersWriteForOperators]
    queryset = Silence.objects.select_related("rule", "server")

    def perform_create(self, serializer: SilenceSerializer) -> None:
        serializer.save(created_by=self.request.user.get_username())

    @extend_schema(
        summary="End a silence now (operators); 409 if it is not in force (an upcoming one is deleted instead)",
        request=None,
        responses=SilenceSerializer,
    )
    @action(detail=True, methods=["post"])
    def end(self, request: Request, pk: str | None = None) -> Response:
        try:
            silence = silence_end(silence=self.get_object())
        except NotInForce as refused:
            return Response({"detail": str(refused)}, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(silence).data)


class ChannelSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=200)
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = NotificationChannel
        fields = ["id", "name", "kind", "url", "secret", "has_secret", "callable_name", "min_severity", "enabled"]

    def get_has_secret(self, channel: NotificationChannel) -> bool:
        return bool(channel.secret)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind", getattr(self.instance, "kind", ""))
        if kind == "webhook":
            url = attrs.get("url", getattr(self.instance, "url", ""))
            problem = url_errors(url) if url else "a webhook needs a URL"
            if problem:
                raise serializers.ValidationError({"url": problem})
            if not attrs.get("secret", getattr(self.instance, "secret", "")):
                raise serializers.ValidationError({"secret": "a webhook needs a secret to sign its bodies with"})
        elif kind == "callable":
            name = attrs.get("callable_name", getattr(self.instance, "callable_name", ""))
            if name not in settings.HEALTH_ALERT_CALLABLES:
                known = ", ".join(sorted(settings.HEALTH_ALERT_CALLABLES)) or "none configured"
                raise serializers.ValidationError({"callable_name": f"not in HEALTH_ALERT_CALLABLES ({known})"})
        return attrs


class DeliverySerializer(serializers.ModelSerializer):
    channel = serializers.SlugRelatedField(slug_field="name", read_only=True)
    rule = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = NotificationDelivery
        fields = [
            "id",
            "channel",
            "rule",
            "state",
            "attempts",
            "last_status_code",
            "last_error",
            "log",
            "payload",
            "created_at",
            "next_attempt_at",
        ]


class ChannelViewSet(viewsets.ModelViewSet):
    serializer_class = ChannelSerializer
    permission_classes = [IsAdmin]
    queryset = NotificationChannel.objects.all()

    @extend_schema(
        summary="Send a test notification now and answer its outcome (recorded in the delivery log)",
        description="Sent once (no retries), signed like every notification; `state` is delivered or failed, with "
        "`last_status_code` and `last_error`. Its payload has `status: test` and no alerts.",
        request=None,
        responses=DeliverySerializer,
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        delivery = send_test(self.get_object(), requested_by=request.user.get_username())
        return Response(DeliverySerializer(delivery).data)


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = DeliverySerializer
    permission_classes = [IsAdmin]
    queryset = NotificationDelivery.objects.select_related("channel", "rule")
