"""A prompt's arguments against the arguments the prompt declares, field by field (as `tool_arguments` does for a
tool's input schema): MCP prompt arguments are strings, named, some required."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The error for an unknown argument names at most this many of the declared ones.
DECLARED_NAMED = 20


def prompt_argument_errors(declared: Sequence[Mapping[str, Any]], arguments: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each wrong argument by name: a required one missing or empty, one the prompt does not declare, one that is not
    text. Empty when the arguments will do."""
    names = [str(argument.get("name", "")) for argument in declared]
    errors: dict[str, list[str]] = {}
    for argument in declared:
        name = str(argument.get("name", ""))
        if argument.get("required") and arguments.get(name) in (None, ""):
            errors[name] = ["This field is required."]
    for name, value in arguments.items():
        if name not in names:
            known = ", ".join(names[:DECLARED_NAMED]) or "none"
            errors[name] = [f"The prompt takes no argument {name!r}; it takes: {known}."]
        elif not isinstance(value, str):
            errors[name] = ["Must be text (MCP prompt arguments are strings)."]
    return errors
