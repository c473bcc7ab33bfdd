"""From a source's raw answer to the values to fuse, or the reason it is left out.

The document is the value of the result as `mcp_client.results.result_value` reads it (the structured content, else
the JSON in the first text content), else the text itself: a source that answers plain text is fused as text.
Checks, in order: the tool's output schema, each field's presence and type, the ranges the query gives, and
staleness by the answer's own timestamp.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jsonschema import exceptions as schema_exceptions

from fusion.query import FusionQuery
from fusion.strategies import WHOLE_ANSWER, is_number
from mcp_client import ResourceReadResult, ToolCallResult
from mcp_client.results import NoResultValue, NotJson, result_value
from registry.tool_arguments import compiled_validator

CLOCK_SKEW_SECONDS = 5.0


class Invalid(ValueError):
    """The answer cannot be used; the message says why, for the explanation."""


@dataclass(frozen=True)
class Reading:
    values: dict[str, Any]
    age_ms: float | None


def document_of(result: ToolCallResult | ResourceReadResult) -> Any:
    try:
        return result_value(result)
    except NotJson as exc:
        return exc.text.strip()
    except NoResultValue as exc:
        raise Invalid(str(exc)) from None


def lookup(document: Any, path: str) -> Any:
    """A dotted path into objects and lists ("bids.0.0"); KeyError when it leads nowhere."""
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise KeyError(path)
    return current


def schema_problem(schema: Mapping[str, Any] | None, document: Any) -> str | None:
    if not isinstance(schema, Mapping) or not schema:
        return None
    validator = compiled_validator(schema)
    if validator is None:
        return None  # the server's own schema is broken: nothing to hold its answer to
    error = schema_exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return None
    where = ".".join(str(part) for part in error.absolute_path) or "the answer"
    return f"violates the tool's output schema at {where}: {error.message[:160]}"


def parse_timestamp(value: Any) -> datetime | None:
    if is_number(value):
        seconds = value / 1000.0 if value > 1e11 else value  # epoch milliseconds or seconds
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def read_answer(
    document: Any,
    structured: bool,
    query: FusionQuery,
    output_schema: Mapping[str, Any] | None,
    numeric_fields: Sequence[str],
    now: datetime,
) -> Reading:
    """The values to fuse and the answer's age; Invalid with the reason otherwise."""
    if structured:
        problem = schema_problem(output_schema, document)
        if problem:
            raise Invalid(problem)
    values: dict[str, Any] = {}
    for name in query.fields or (WHOLE_ANSWER,):
        try:
            value = document if name == WHOLE_ANSWER else lookup(document, name)
        except KeyError:
            raise Invalid(f"the answer has no field {name!r}") from None
        if name in numeric_fields and not is_number(value):
            if isinstance(value, float) and not math.isfinite(value):
                raise Invalid(f"{name or 'the answer'} is not a finite number")
            raise Invalid(f"{name or 'the answer'} is not a number: {json.dumps(value, default=str)[:60]}")
        bounds = query.ranges.get(name)
        if bounds is not None and is_number(value):
            problem = bounds.problem(float(value))
            if problem:
                raise Invalid(f"{name} out of range: {problem}")
        values[name] = value

    age_ms: float | None = None
    try:
        stamp = parse_timestamp(lookup(document, query.timestamp_field))
    except KeyError:
        stamp = None
    if stamp is not None:
        age_ms = (now - stamp).total_seconds() * 1000.0
        if age_ms < -CLOCK_SKEW_SECONDS * 1000.0:
            raise Invalid(f"its timestamp lies {-age_ms / 1000.0:.1f} s in the future")
        age_ms = max(0.0, age_ms)
        if query.max_age_seconds is not None and age_ms > query.max_age_seconds * 1000.0:
            raise Invalid(f"stale: {age_ms / 1000.0:.1f} s old, the limit is {query.max_age_seconds:g} s")
    elif query.max_age_seconds is not None:
        raise Invalid(f"no timestamp at {query.timestamp_field!r} to judge its age by (max_age_seconds is set)")
    return Reading(values, age_ms)


def numeric_field_names(documents: Sequence[Any], fields: Sequence[str]) -> list[str]:
    """Fields that are numbers in most of the answers that have them: there, a non-number is a wrong answer,
    not a vote."""
    numeric: list[str] = []
    for name in fields or (WHOLE_ANSWER,):
        seen = numbers = 0
        for document in documents:
            try:
                value = document if name == WHOLE_ANSWER else lookup(document, name)
            except (KeyError, TypeError):
                continue
            seen += 1
            numbers += is_number(value)
        if seen and numbers * 2 > seen:
            numeric.append(name)
    return numeric
