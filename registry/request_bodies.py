"""JSON request bodies declared as serializers that take JSON's types as they come.

DRF's fields coerce: a CharField takes 5 as "5", a FloatField takes "5" and true, an IntegerField takes 2.0. A body
saying {"quorum": true} is a mistake the client should hear about with the field named, so the fields here refuse
what JSON did not say. `JsonBody` is the base of such a body: unknown fields are named, an empty value (null, "",
[], {}) means the default as forms and UIs send it (unless the body says otherwise), and the errors of nested parts
are named by their path ("participants.0.side", "ranges.bid.min"), the error contract the fusion and coordinator
APIs have always had.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings

EMPTY_VALUES: tuple[Any, ...] = (None, "", [], {})


def literal(message: str) -> str:
    """A message as DRF's error_messages want it: it formats them, so literal braces are doubled."""
    return message.replace("{", "{{").replace("}", "}}")


def one_message(message: str, codes: tuple[str, ...]) -> dict[str, str]:
    """error_messages answering `message` for every way a value can be wrong (codes), missing and null too."""
    return {code: literal(message) for code in (*codes, "required", "null")}


def _one_message(message: str | None, codes: tuple[str, ...], kwargs: dict[str, Any]) -> None:
    if message is not None:
        kwargs["error_messages"] = one_message(message, codes) | kwargs.get("error_messages", {})


class JsonTextField(serializers.CharField):
    """A JSON string, kept as sent (not trimmed); `pattern` it must match in full, if given."""

    def __init__(self, *, pattern: re.Pattern[str] | None = None, message: str | None = None, **kwargs: Any) -> None:
        _one_message(message, ("invalid", "blank", "max_length", "min_length"), kwargs)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)
        self.pattern = pattern

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or (self.pattern is not None and data and not self.pattern.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonNumberField(serializers.FloatField):
    """A finite JSON number (not a string, not a boolean)."""

    default_error_messages = {"invalid": "Must be a number."}

    def __init__(self, *, message: str | None = None, **kwargs: Any) -> None:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if message is None and low is not None and high is not None:
            kwargs["error_messages"] = {
                code: f"Must be between {low:g} and {high:g}." for code in ("min_value", "max_value")
            } | kwargs.get("error_messages", {})
        _one_message(message, ("invalid", "min_value", "max_value"), kwargs)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float) or not math.isfinite(data):
            self.fail("invalid")
        return float(data)


class JsonIntegerField(serializers.IntegerField):
    """A JSON whole number (not 2.0, not a string, not a boolean)."""

    def __init__(self, *, message: str | None = None, **kwargs: Any) -> None:
        _one_message(message, ("invalid", "min_value", "max_value"), kwargs)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return data


class JsonObjectField(serializers.DictField):
    """A JSON object whose values are taken as they are."""

    def __init__(self, *, message: str | None = None, **kwargs: Any) -> None:
        _one_message(message, ("not_a_dict",), kwargs)
        super().__init__(**kwargs)


@extend_schema_field({"type": "array", "items": {"type": "string"}, "uniqueItems": True})
class DistinctNamesField(serializers.Field):
    """A list of distinct names matching `pattern` (if given), at most `limit` (if given); "a, b" is read as
    ["a", "b"]. Its messages can be worded for what the names are (error_messages)."""

    default_error_messages = {
        "not_a_list": "Must be a list of strings.",
        "too_many": "At most {limit} entries.",
        "bad_entry": "Not a valid entry: {entry!r}.",
        "repeated": "Entries must not repeat.",
    }

    def __init__(self, *, pattern: re.Pattern[str] | None = None, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pattern, self.limit = pattern, limit

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            data = [part.strip() for part in data.split(",") if part.strip()]
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            self.fail("not_a_list")
        if self.limit is not None and len(data) > self.limit:
            self.fail("too_many", limit=self.limit)
        bad = [item for item in data if self.pattern is not None and not self.pattern.fullmatch(item)]
        if bad:
            self.fail("bad_entry", entry=bad[0][:80])
        if len(set(data)) != len(data):
            self.fail("repeated")
        return data

    def to_representation(self, value: Any) -> list[str]:
        return list(value)


def dotted_errors(detail: Any, prefix: str = "") -> dict[str, list[Any]]:
    """Nested serializer errors as one level named by path: {"participants": [{}, {"side": [...]}]} becomes
    {"participants.1.side": [...]}; a nested part's own (non-field) errors are named by the part's path."""
    if isinstance(detail, Mapping):
        items: Any = detail.items()
    elif isinstance(detail, list) and any(isinstance(item, Mapping | list) for item in detail):
        items = enumerate(detail)
    else:
        return {prefix or api_settings.NON_FIELD_ERRORS_KEY: detail if isinstance(detail, list) else [detail]}
    flat: dict[str, list[Any]] = {}
    for key, item in items:
        own = key == api_settings.NON_FIELD_ERRORS_KEY and prefix
        flat |= dotted_errors(item, prefix if own else f"{prefix}.{key}" if prefix else str(key))
    return flat


def plain_errors(detail: Any) -> dict[str, list[str]]:
    """A serializer's errors as plain text by field path (what a 400 answers)."""
    return {name: [str(message) for message in messages] for name, messages in dotted_errors(detail).items()}


class JsonBody(serializers.Serializer):
    """The base of a JSON request body: see the module's docstring."""

    default_error_messages = {"invalid": "The body must be a JSON object."}
    unknown_message = "Unknown field; the fields are {fields}."
    empty_means_default = True  # False: null, "", [] and {} are checked like any other value

    def _means_default(self, value: Any) -> bool:
        return self.empty_means_default and value in EMPTY_VALUES

    def run_validation(self, data: Any = empty) -> Any:
        try:
            return super().run_validation(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(dotted_errors(exc.detail)) from None

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return super().to_internal_value(data)  # refused with the "invalid" message
        names = ", ".join(sorted(self.fields))
        unknown = {key: [self.unknown_message.format(fields=names)] for key in sorted(set(data) - set(self.fields))}
        try:
            given = {key: value for key, value in data.items() if not self._means_default(value)}
            values = super().to_internal_value(given)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(unknown | dotted_errors(exc.detail)) from None
        if unknown:
            raise serializers.ValidationError(unknown)
        return values


def query_filters(serializer_class: type[serializers.Serializer], params: Any) -> dict[str, Any]:
    """A list's filters (?name=value) read by the serializer that declares them, which the views also show in the
    OpenAPI schema (`extend_schema(parameters=[...])`). A bad one answers 400 naming it with its message as text
    ({"state": "one of ..."}), the shape these filters always answered."""
    filters = serializer_class(data=params)
    if not filters.is_valid():
        raise serializers.ValidationError({name: str(messages[0]) for name, messages in filters.errors.items()})
    return {name: value for name, value in filters.validated_data.items() if value not in EMPTY_VALUES}


def one_of(choices: list[str]) -> dict[str, str]:
    """error_messages of a filter's ChoiceField, in the words the filters always used."""
    return {"invalid_choice": literal(f"one of {', '.join(choices)}")}
