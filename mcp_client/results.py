"""What requests give back: plain, JSON-friendly results, and an `Answer` pairing a result with its outcome.

A result's content is measured before it is turned into dicts (`max_bytes`, setting MCP_MAX_RESULT_BYTES): one over
the limit raises `AnswerTooLarge` instead of being copied again, held by callers, stored and shown.
"""

from __future__ import annotations

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
