"""Checking a tool call's arguments against the tool's input schema before anything is sent to the server.

The answer names each field that is wrong, the way the API names fields of any other bad input:
{"symbol": ["This field is required."], "depth": ["0 is less than the minimum of 1"]}.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from jsonschema import exceptions as schema_exceptions
from jsonschema.validators import validator_for

MAX_ERRORS = 20


def _field_of(path: Any) -> str:
    return ".".join(str(part) for part in path) or "arguments"


@functools.lru_cache(maxsize=1_024)
def _validator_for_text(text: str) -> Any | None:
    schema = json.loads(text)
    validator_class = validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except schema_exceptions.SchemaError:
        return None
    return validator_class(schema)


def compiled_validator(schema: Mapping[str, Any]) -> Any | None:
    """A validator for a server's JSON schema, or None when the schema itself is broken. Checking a schema against
    its metaschema costs milliseconds, so each distinct schema is checked and compiled once."""
    try:
        text = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):
        return None
    return _validator_for_text(text)


def argument_errors(schema: Mapping[str, Any] | None, arguments: Any) -> dict[str, list[str]]:
    """Field -> messages for every way `arguments` breaks `schema` (empty when they fit, or when there is no
    usable schema: the server then judges for itself)."""
    if not isinstance(arguments, Mapping):
        return {"arguments": ["Must be a JSON object of argument names to values."]}
    if not isinstance(schema, Mapping) or not schema:
        return {}
    validator = compiled_validator(schema)
    if validator is None:
        return {}  # the server's schema is broken; let the server answer
    errors: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path)):
        if error.validator == "required" and isinstance(error.instance, Mapping):
            prefix = list(error.absolute_path)
            for name in error.validator_value:
                if name not in error.instance:
                    errors.setdefault(_field_of([*prefix, name]), []).append("This field is required.")
        elif error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            allowed = set((error.schema or {}).get("properties", {}))
            for name in error.instance:
                if name not in allowed:
                    errors.setdefault(_field_of([*error.absolute_path, name]), []).append("Unknown argument.")
        else:
            message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
            errors.setdefault(_field_of(error.absolute_path), []).append(message)
        if len(errors) >= MAX_ERRORS:
            break
    return errors
