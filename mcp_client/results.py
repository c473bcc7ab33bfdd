"""What requests give back: plain, JSON-friendly results, and an `Answer` pairing a result with its outcome.

A result's content is measured before it is turned into dicts (`max_bytes`, setting MCP_MAX_RESULT_BYTES): one over
the limit raises `AnswerTooLarge` instead of being copied again, held by callers, stored and shown.

`result_value` is the one reader of the value a result carries (fusion's answers, health's synthetic checks, the
pipeline's polls and resource events, the coordinator's participants and workflows all read through it): the
structured content when the tool gave some, else the JSON in the first text content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mcp_types import CallToolResult, ReadResourceResult

from .capabilities import dump
from .limits import AnswerTooLarge, content_bytes
from .outcomes import CallOutcome

T = TypeVar("T")


@dataclass
class ToolCallResult:
    content: list[dict[str, Any]]
    structured_content: dict[str, Any] | None
    is_error: bool
    meta: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The text contents joined by newlines (what most tools mean by their answer)."""
        return "\n".join(item["text"] for item in self.content if item.get("type") == "text" and "text" in item)

    @classmethod
    def from_sdk(cls, result: CallToolResult, *, max_bytes: int | None = None) -> ToolCallResult:
        if max_bytes is not None:
            _check_size(*content_bytes(result.content, result.structured_content, budget=max_bytes), max_bytes)
        return cls(
            content=[dump(item) for item in result.content],
            structured_content=result.structured_content,
            is_error=bool(result.is_error),
            meta=result.meta,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"content": self.content, "structured_content": self.structured_content, "is_error": self.is_error}


@dataclass
class ResourceReadResult:
    uri: str
    contents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(item["text"] for item in self.contents if "text" in item)

    @classmethod
    def from_sdk(cls, uri: str, result: ReadResourceResult, *, max_bytes: int | None = None) -> ResourceReadResult:
        if max_bytes is not None:
            _check_size(*content_bytes(result.contents, budget=max_bytes), max_bytes)
        return cls(uri=uri, contents=[dump(item) for item in result.contents])

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "contents": self.contents}


def _check_size(size: int, exact: bool, limit: int) -> None:
    if size > limit:
        raise AnswerTooLarge(size, limit, at_least=not exact)


@dataclass
class Answer(Generic[T]):
    """A successful request's result together with its outcome (latency, who asked, correlation id).

    A failed request raises a `ConnectionLayerError` instead, whose `outcome` attribute carries the same record.
    """

    result: T
    outcome: CallOutcome


class NoResultValue(ValueError):
    """A result that carries no value to read; the message says why. `text` is the result's whole text, for the
    callers that take plain text as the value when it is not JSON."""

    def __init__(self, message: str, *, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class ToolAnsweredError(NoResultValue):
    """The tool answered with an error (`isError`): `text` is the error it gave."""

    def __init__(self, text: str) -> None:
        super().__init__(f"the tool answered with an error: {text[:200]}", text=text)


class EmptyAnswer(NoResultValue):
    """No structured content and no text (or only blanks)."""

    def __init__(self, text: str) -> None:
        super().__init__("the answer is empty", text=text)


class NotJson(NoResultValue):
    """No structured content, and the first text content is not JSON: `text` may still be the answer to a caller
    that takes text."""

    def __init__(self, first: str, text: str) -> None:
        super().__init__(f"the answer is not JSON: {first.strip()[:60]!r}", text=text)


def _first_text(result: ToolCallResult | ResourceReadResult) -> str | None:
    items = result.content if isinstance(result, ToolCallResult) else result.contents
    for item in items:
        if isinstance(item.get("text"), str) and item.get("type", "text") == "text":
            return item["text"]
    return None


def result_value(result: ToolCallResult | ResourceReadResult) -> Any:
    """The value a tool result or a resource read carries: the structured content when there is some (what the
    tool's output schema describes), else the JSON in the first text content (a tool typed `-> dict` answers only
    JSON text; a second text content is commentary, not part of the value).

    Raises (all NoResultValue) ToolAnsweredError for a tool's error answer, EmptyAnswer when there is no text,
    NotJson when the text is not JSON."""
    if isinstance(result, ToolCallResult):
        if result.is_error:
            raise ToolAnsweredError(result.text)
        if result.structured_content is not None:
            return result.structured_content
    first = _first_text(result)
    if first is None or not first.strip():
        raise EmptyAnswer(result.text)
    try:
        return json.loads(first)
    except ValueError:
        raise NotJson(first, result.text) from None
