"""A synthetic check's expected result: a JSON path into the tool's answer and a condition on the value found.

    {"path": "bid", "op": "gt", "value": 0}          the answer's bid is above 0
    {"path": "bids.0.1", "op": "exists"}              the first bid level has a size
Paths are dotted keys and list indexes. Operators: exists, eq, ne, gt, ge, lt, le, contains.
The answer is the value of the tool's result (`mcp_client.results.result_value`: its structured content, else the
JSON in its first text content); a tool that answers plain text is held to the expectation by its text.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from mcp_client.results import NoResultValue, NotJson, ToolCallResult, result_value

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "contains": lambda found, wanted: wanted in found,
}
MISSING = object()


def find(document: Any, path: str) -> Any:
    value = document
    for part in path.split(".") if path else []:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def expectation_problem(expect: dict[str, Any], answer: Any) -> str | None:
    """None when the answer meets the expectation, else what is wrong, in words."""
    path, op = str(expect.get("path", "")), str(expect.get("op", "exists"))
    found = find(answer, path)
    if found is MISSING:
        return f"{path or 'the answer'} is missing"
    if op == "exists":
        return None
    wanted = expect.get("value")
    try:
        if OPERATORS[op](found, wanted):
            return None
    except TypeError:
        pass
    return f"{path} is {str(found)[:60]!s}, expected {op} {wanted!r}"


def answer_problem(tool: str, expect: dict[str, Any] | None, result: ToolCallResult) -> str | None:
    """None when a synthetic call's answer is not an error and meets the expectation (if any), else what is wrong,
    prefixed with the tool's name."""
    if result.is_error:
        return f"{tool} answered an error: {result.text[:200]}"
    if not expect:
        return None
    try:
        value = result_value(result)
    except NotJson as exc:
        value = exc.text
    except NoResultValue as exc:
        return f"{tool}: {exc}"
    problem = expectation_problem(expect, value)
    return f"{tool}: {problem}" if problem else None
