"""A fusion query: what to ask, of whom, how to fuse it. Declared as the API's request body (FusionQuerySerializer,
shown in the OpenAPI schema), read from its JSON with every bad field named."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from rest_framework import serializers

from fusion.strategies import StrategyError, get_strategy
from fusion.tool_safety import RULE as STATE_CHANGING_RULE
from registry.request_bodies import (
    DistinctNamesField,
    JsonBody,
    JsonIntegerField,
    JsonNumberField,
    JsonObjectField,
    JsonTextField,
    literal,
    plain_errors,
)

_FIELD_PATH = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
MAX_SOURCES = 64
MAX_FIELDS = 20


class QueryError(ValueError):
    """Field -> messages, answered as a 400 naming each field."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Range:
    minimum: float | None = None
    maximum: float | None = None

    def problem(self, value: float) -> str | None:
        if self.minimum is not None and value < self.minimum:
            return f"{value:g} is below the minimum {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{value:g} is above the maximum {self.maximum:g}"
        return None

    def to_json(self) -> dict[str, float | None]:
        return {"min": self.minimum, "max": self.maximum}


@dataclass(frozen=True)
class FusionQuery:
    tool: str = ""
    resource: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    servers: tuple[str, ...] = ()
    tag: str = ""
    server_type: str = ""
    strategy: str = "median"
    options: Mapping[str, Any] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    quorum: int = 1
    timeout_seconds: float = 5.0
    deadline_seconds: float = 10.0
    cache_ttl_seconds: float = 0.0
    max_age_seconds: float | None = None
    timestamp_field: str = "timestamp"
    ranges: Mapping[str, Range] = field(default_factory=dict)
    allow_state_changing: bool = False

    @property
    def subject(self) -> str:
        """What trust is earned on: the tool, or the resource."""
        return f"tool:{self.tool}" if self.tool else f"resource:{self.resource}"

    def to_json(self) -> dict[str, Any]:
        """The normalised query: equal queries give equal JSON, whatever order their keys came in."""
        return {
            "tool": self.tool or None,
            "resource": self.resource or None,
            "arguments": dict(self.arguments),
            "servers": sorted(self.servers) or None,
            "tag": self.tag or None,
            "server_type": self.server_type or None,
            "strategy": self.strategy,
            "options": dict(self.options),
            "fields": list(self.fields),
            "quorum": self.quorum,
            "timeout_seconds": self.timeout_seconds,
            "deadline_seconds": self.deadline_seconds,
            "max_age_seconds": self.max_age_seconds,
            "timestamp_field": self.timestamp_field,
            "ranges": {name: bounds.to_json() for name, bounds in sorted(self.ranges.items())},
            "allow_state_changing": self.allow_state_changing,
        }

    def cache_key(self) -> str:
        """The cache TTL is not part of the question, so it is not part of the key."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), default=str)
        return "fusion:answer:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


class RangeSerializer(JsonBody):
    """Bounds a fused field's value must lie within; either end may be left open."""

    default_error_messages = {"invalid": 'An object with "min" and/or "max".'}
    min = JsonNumberField(required=False, default=None)
    max = JsonNumberField(required=False, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["min"] is not None and attrs["max"] is not None and attrs["min"] > attrs["max"]:
            raise serializers.ValidationError("min must not exceed max.")
        return attrs


def _what_errors(attrs: Mapping[str, Any]) -> dict[str, list[str]]:
    """A tool or a resource, one of them; a resource takes no arguments."""
    errors: dict[str, list[str]] = {}
    if not attrs["tool"] and not attrs["resource"]:
        errors["tool"] = ["Give a tool (or a resource) to ask about."]
    if attrs["tool"] and attrs["resource"]:
        errors["resource"] = ["Give a tool or a resource, not both."]
    if attrs["resource"] and attrs["arguments"]:
        errors["arguments"] = ["A resource takes no arguments."]
    return errors


def _whom_errors(attrs: Mapping[str, Any]) -> dict[str, list[str]]:
    """The sources chosen one way; a quorum the named servers can meet."""
    errors: dict[str, list[str]] = {}
    chosen = [key for key in SOURCE_CHOICES if attrs[key]]
    if len(chosen) > 1:
        errors[chosen[1]] = ["Choose the sources one way: servers, tag or server_type."]
    if attrs["servers"] and attrs["quorum"] > len(attrs["servers"]):
        errors["quorum"] = [f"Cannot exceed the {len(attrs['servers'])} servers asked."]
    return errors


class JsonBooleanField(serializers.BooleanField):
    """A JSON true or false, nothing that merely looks like one ("yes", 1): an opt-in must be meant."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


SOURCE_CHOICES = ("servers", "tag", "server_type")
SLUG = "A slug (letters, digits, - and _)."


class FusionQuerySerializer(JsonBody):
    """POST /api/fusion/query/: what to ask (tool or resource), of whom (servers, tag or server_type; default:
    every enabled server offering it), how to fuse the answers and how long to wait. 400 names each bad field."""

    tool = JsonTextField(
        required=False, default="", max_length=300, message="A tool name (text, at most 300 characters)."
    )
    resource = JsonTextField(
        required=False, default="", max_length=1000, message="A resource URI (text, at most 1000 characters)."
    )
    arguments = JsonObjectField(
        required=False, default=dict, message="Must be a JSON object of argument names to values."
    )
    servers = DistinctNamesField(pattern=_NAME, limit=MAX_SOURCES, required=False, default=list)
    tag = JsonTextField(required=False, default="", pattern=_NAME, message=SLUG)
    server_type = JsonTextField(required=False, default="", pattern=_NAME, message=SLUG)
    strategy = JsonTextField(
        required=False,
        default=lambda: settings.FUSION_DEFAULT_STRATEGY,
        message="A strategy name.",
        help_text="See GET /api/fusion/strategies/. Default: FUSION_DEFAULT_STRATEGY.",
    )
    options = JsonObjectField(required=False, default=dict, message="Must be a JSON object of the strategy's options.")
    quorum = JsonIntegerField(
        required=False,
        default=1,
        min_value=1,
        max_value=MAX_SOURCES,
        message=f"A whole number from 1 to {MAX_SOURCES}.",
    )
    timeout_seconds = JsonNumberField(
        required=False, default=lambda: settings.FUSION_DEFAULT_TIMEOUT_SECONDS, min_value=0.01, max_value=300
    )
    deadline_seconds = JsonNumberField(
        required=False, default=None, min_value=0.01, max_value=600, help_text="Default: timeout_seconds + 1."
    )
    cache_ttl_seconds = JsonNumberField(required=False, default=0.0, min_value=0, max_value=86_400)
    max_age_seconds = JsonNumberField(required=False, default=None, min_value=0.001, max_value=86_400)
    timestamp_field = JsonTextField(
        required=False, default="timestamp", pattern=_FIELD_PATH, message="A field path, e.g. timestamp."
    )
    allow_state_changing = JsonBooleanField(
        required=False,
        default=False,
        help_text=(
            "The explicit opt-in to fan out a tool that changes state (placing, confirming or cancelling an order on "
            "every source at once). Without it such a tool is refused with 400 on the field tool. "
            + STATE_CHANGING_RULE
        ),
    )
    ranges = serializers.DictField(
        child=RangeSerializer(),
        required=False,
        default=dict,
        error_messages={"not_a_dict": literal('An object of field -> {"min": number, "max": number}.')},
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        # Declared here, not as an attribute: `fields` is the serializer's own map of its fields.
        return super().get_fields() | {
            "fields": DistinctNamesField(pattern=_FIELD_PATH, limit=MAX_FIELDS, required=False, default=list)
        }

    def validate_ranges(self, ranges: dict[str, dict[str, float | None]]) -> dict[str, Range]:
        bad = {name: ["Not a field path."] for name in ranges if not _FIELD_PATH.fullmatch(name)}
        if bad:
            raise serializers.ValidationError(bad)
        return {name: Range(bounds["min"], bounds["max"]) for name, bounds in ranges.items()}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = _what_errors(attrs) | _whom_errors(attrs)
        try:
            attrs["options"] = get_strategy(attrs["strategy"]).parse_options(attrs["options"])
        except StrategyError as exc:
            errors[exc.field] = [str(exc)]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def parse_query(data: Any) -> FusionQuery:
    """A FusionQuery from the API's JSON, or QueryError naming every field that is wrong."""
    body = FusionQuerySerializer(data=data)
    if not body.is_valid():
        raise QueryError(plain_errors(body.errors))
    attrs = body.validated_data
    return FusionQuery(
        **attrs
        | {
            "servers": tuple(attrs["servers"]),
            "fields": tuple(attrs["fields"]),
            "deadline_seconds": attrs["deadline_seconds"] or attrs["timeout_seconds"] + 1.0,
        }
    )
