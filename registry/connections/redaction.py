"""Scrubbing text that leaves the connection layer: error messages, statuses, outcomes and log lines.

Two things must never travel in such text: the secrets a target was given (header and env values: an HTTP stack
happily prints `Illegal header value b'Bearer ...'`), and pieces of a server's reply body (an internal address
answering HTML would otherwise show that HTML to every viewer through a pydantic error's `input_value=`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[secret]"
MAX_MESSAGE_LENGTH = 500
# Parts of a secret value that are themselves worth hiding ("Bearer abc123" -> also "abc123").
_MIN_SECRET_PART = 4

# pydantic: "... [type=json_invalid, input_value='<html>...', input_type=str]"
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=|\]$|$)", re.DOTALL)
# An HTTP stack echoing a header value it refused.
_HEADER_VALUE = re.compile(r"(header value)\s+\S.*", re.IGNORECASE)


class Redactor:
    """Replaces every known secret (and its whitespace-separated parts) with a marker, strips reply bodies, caps
    the length. Callable on any text; cheap enough for every log line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            values.add(secret)
            values.update(part for part in secret.split() if len(part) >= _MIN_SECRET_PART)
        # Longest first, so "Bearer abc" is replaced whole before "abc".
        self._secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _PYDANTIC_INPUT.sub("input_value=(reply not shown)", text)
        text = _HEADER_VALUE.sub(r"\1 (not shown)", text)
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        return text


NO_SECRETS = Redactor()
