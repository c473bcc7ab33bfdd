"""A fusion query: what to ask, of whom, how to fuse it. Parsed from the API's JSON with every bad field named."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from fusion.strategies import StrategyError, get_strategy

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
        }

    def cache_key(self) -> str:
        """The cache TTL is not part of the question, so it is not part of the key."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), default=str)
        return "fusion:answer:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _number(
    data: Mapping[str, Any], name: str, default: float | None, errors: dict[str, list[str]], low: float, high: float
) -> float | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        errors[name] = ["Must be a number."]
        return default
    if not low <= value <= high:
        errors[name] = [f"Must be between {low:g} and {high:g}."]
        return default
    return float(value)


def _text_list(value: Any, name: str, errors: dict[str, list[str]], pattern: re.Pattern[str], limit: int) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors[name] = ["Must be a list of strings."]
        return []
    if len(value) > limit:
        errors[name] = [f"At most {limit} entries."]
        return []
    bad = [item for item in value if not pattern.match(item)]
    if bad:
        errors[name] = [f"Not a valid entry: {bad[0][:80]!r}."]
        return []
    if len(set(value)) != len(value):
        errors[name] = ["Entries must not repeat."]
        return []
    return value


def _ranges(value: Any, errors: dict[str, list[str]]) -> dict[str, Range]:
    if value in (None, {}):
        return {}
    if not isinstance(value, Mapping):
        errors["ranges"] = ['An object of field -> {"min": number, "max": number}.']
        return {}
    ranges: dict[str, Range] = {}
    for name, bounds in value.items():
        key = f"ranges.{name}"
        if not isinstance(name, str) or not _FIELD_PATH.match(name):
            errors[key] = ["Not a field path."]
            continue
        if not isinstance(bounds, Mapping) or set(bounds) - {"min", "max"}:
            errors[key] = ['An object with "min" and/or "max".']
            continue
        limits: list[float | None] = []
        for end in ("min", "max"):
            number = bounds.get(end)
            if number is not None and (
                isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number)
            ):
                errors[f"{key}.{end}"] = ["Must be a number."]
                number = None
            limits.append(None if number is None else float(number))
        if limits[0] is not None and limits[1] is not None and limits[0] > limits[1]:
            errors[key] = ["min must not exceed max."]
            continue
        ranges[name] = Range(limits[0], limits[1])
    return ranges


KNOWN_KEYS = {
    "tool",
    "resource",
    "arguments",
    "servers",
    "tag",
    "server_type",
    "strategy",
    "options",
    "fields",
    "quorum",
    "timeout_seconds",
    "deadline_seconds",
    "cache_ttl_seconds",
    "max_age_seconds",
    "timestamp_field",
    "ranges",
}


def parse_query(data: Any) -> FusionQuery:
    """A FusionQuery from the API's JSON, or QueryError naming every field that is wrong."""
    if not isinstance(data, Mapping):
        raise QueryError({"non_field_errors": ["The body must be a JSON object."]})
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        errors[unknown[0]] = [f"Unknown field; the fields are {', '.join(sorted(KNOWN_KEYS))}."]

    tool, resource = data.get("tool") or "", data.get("resource") or ""
    if not isinstance(tool, str) or len(tool) > 300:
        errors["tool"] = ["A tool name (text, at most 300 characters)."]
        tool = ""
    if not isinstance(resource, str) or len(resource) > 1000:
        errors["resource"] = ["A resource URI (text, at most 1000 characters)."]
        resource = ""
    if not tool and not resource and "tool" not in errors and "resource" not in errors:
        errors["tool"] = ["Give a tool (or a resource) to ask about."]
    if tool and resource:
        errors["resource"] = ["Give a tool or a resource, not both."]

    arguments = data.get("arguments") or {}
    if not isinstance(arguments, Mapping):
        errors["arguments"] = ["Must be a JSON object of argument names to values."]
        arguments = {}
    if resource and arguments:
        errors["arguments"] = ["A resource takes no arguments."]

    selectors = [key for key in ("servers", "tag", "server_type") if data.get(key) not in (None, "", [])]
    if len(selectors) > 1:
        errors[selectors[1]] = ["Choose the sources one way: servers, tag or server_type."]
    servers = _text_list(data.get("servers") or [], "servers", errors, _NAME, MAX_SOURCES)
    tag, server_type = data.get("tag") or "", data.get("server_type") or ""
    for name, value in (("tag", tag), ("server_type", server_type)):
        if not isinstance(value, str) or (value and not _NAME.match(value)):
            errors[name] = ["A slug (letters, digits, - and _)."]

    strategy_name = data.get("strategy") or settings.FUSION_DEFAULT_STRATEGY
    options = data.get("options") or {}
    if not isinstance(strategy_name, str):
        errors["strategy"] = ["A strategy name."]
        strategy_name = settings.FUSION_DEFAULT_STRATEGY
    if not isinstance(options, Mapping):
        errors["options"] = ["Must be a JSON object of the strategy's options."]
        options = {}
    try:
        options = get_strategy(strategy_name).parse_options(options)
    except StrategyError as exc:
        errors[exc.field] = [str(exc)]

    fields = _text_list(data.get("fields") or [], "fields", errors, _FIELD_PATH, MAX_FIELDS)

    quorum = data.get("quorum", 1)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= MAX_SOURCES:
        errors["quorum"] = [f"A whole number from 1 to {MAX_SOURCES}."]
        quorum = 1
    if servers and isinstance(quorum, int) and quorum > len(servers):
        errors["quorum"] = [f"Cannot exceed the {len(servers)} servers asked."]

    timeout = _number(data, "timeout_seconds", settings.FUSION_DEFAULT_TIMEOUT_SECONDS, errors, 0.01, 300)
    deadline = _number(data, "deadline_seconds", None, errors, 0.01, 600)
    if deadline is None:
        deadline = (timeout or 5.0) + 1.0
    ttl = _number(data, "cache_ttl_seconds", 0.0, errors, 0, 86_400)
    max_age = _number(data, "max_age_seconds", None, errors, 0.001, 86_400)
    timestamp_field = data.get("timestamp_field") or "timestamp"
    if not isinstance(timestamp_field, str) or not _FIELD_PATH.match(timestamp_field):
        errors["timestamp_field"] = ["A field path, e.g. timestamp."]
        timestamp_field = "timestamp"
    ranges = _ranges(data.get("ranges"), errors)

    if errors:
        raise QueryError(errors)
    return FusionQuery(
        tool=tool,
        resource=resource,
        arguments=dict(arguments),
        servers=tuple(servers),
        tag=tag,
        server_type=server_type,
        strategy=strategy_name,
        options=options,
        fields=tuple(fields),
        quorum=int(quorum),
        timeout_seconds=timeout or settings.FUSION_DEFAULT_TIMEOUT_SECONDS,
        deadline_seconds=deadline,
        cache_ttl_seconds=ttl or 0.0,
        max_age_seconds=max_age,
        timestamp_field=timestamp_field,
        ranges=ranges,
    )
