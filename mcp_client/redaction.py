"""Scrubbing text that leaves the connection layer: error messages, statuses, outcomes and every log line.

Two things must never travel in such text: the secrets a target was given (header and env values: an HTTP stack
happily prints `Illegal header value b'Bearer ...'`), and pieces of a server's reply body (an internal address
answering HTML would otherwise show that HTML to every viewer through a pydantic error's `input_value=`).

What counts as the secret appearing (whole values, not pieces of words):
- a value of `ANYWHERE_LENGTH` (16) characters or more is hidden wherever it appears, even glued to other text
  (`TOKEN_<value>`): a string that long does not turn up inside an unrelated word by chance;
- a shorter value of at least `MIN_SECRET_LENGTH` (4) characters is hidden where it stands as a whole token: not
  preceded or followed by a word character (letter, digit, `_`). `abcd` is hidden in `key=abcd` and `'abcd'`,
  not in `hostile-abcdef`;
- a value shorter than that (`1`, `on`, `dev`) is hidden only when it is the whole text (a stderr line, a server's
  error message that is nothing else): matched anywhere else it would eat digits and syllables of every line;
- the whitespace-separated parts of a value (`Bearer abc123` -> `abc123`) count as values of their own, except the
  names of HTTP authorization schemes (`Bearer`, `Basic`...), which are not secret.

The log filter: every `Redactor` registers its values with `SECRETS` (the process-wide set of secret values the
connection layer knows, dropped when the redactor is garbage) while it lives. `SecretsFilter`, configured on the
handlers in settings.LOGGING, also installs a log record factory, so every record of every logger (the SDK's
`mcp.*`, `httpx2`, `uvicorn`, `django`...) is scrubbed when it is made, before any handler (ours, a test's
capture, an error reporter) sees it. With no secret registered that costs one attribute check per record; the
combined pattern is compiled again only when the set of values changes.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[secret]"
MAX_MESSAGE_LENGTH = 500
MIN_SECRET_LENGTH = 4
ANYWHERE_LENGTH = 16
# Whitespace-separated words of a header value that name the scheme, not the credential.
_AUTH_SCHEMES = frozenset({"basic", "bearer", "digest", "token", "negotiate", "apikey"})

# pydantic: "... [type=json_invalid, input_value='<html>...', input_type=str]"
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=|\]$|$)", re.DOTALL)
# An HTTP stack echoing a header value it refused.
_HEADER_VALUE = re.compile(r"(header value)\s+\S.*", re.IGNORECASE)


def secret_values(secrets: Iterable[str]) -> frozenset[str]:
    """The values to hide for these secrets: each secret whole, and its parts that are not a scheme name."""
    values: set[str] = set()
    for secret in secrets:
        if not secret or not secret.strip():
            continue
        values.add(secret)
        parts = secret.split()
        if len(parts) > 1:
            values.update(part for part in parts if part.lower() not in _AUTH_SCHEMES)
    return frozenset(values)


def _trie(values: Iterable[str]) -> str:
    """An alternation of literal values as a prefix tree: `ab(?:c|d)` for "abc", "abd". The regex engine tries a plain
    alternation's branches one by one at every position of the text (about 250 us for a log line against 1000
    values, measured here); a tree tries the branches of one character at a time (tens of us)."""
    root: dict[str, Any] = {}
    for value in values:
        node = root
        for char in value:
            node = node.setdefault(char, {})
        node[""] = {}  # a value ends here

    def render(node: dict[str, Any]) -> str:
        branches = []
        for char in sorted(node):
            if not char:
                continue
            # A run of single-child nodes is one literal: no recursion per character of a long value (a PEM key).
            run, child = char, node[char]
            while len(child) == 1 and "" not in child:
                ((char, child),) = child.items()
                run += char
            branches.append(re.escape(run) + render(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a value ends here and longer ones go on: greedy, so the longest is taken
            return f"(?:{body})?"
        return body

    return render(root)


def compile_secrets(values: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for the values of `MIN_SECRET_LENGTH` or more (see the module docstring), or None."""
    anywhere = [value for value in values if len(value) >= ANYWHERE_LENGTH]
    bounded = [value for value in values if MIN_SECRET_LENGTH <= len(value) < ANYWHERE_LENGTH]
    branches = []
    if anywhere:
        branches.append(f"(?:{_trie(anywhere)})")
    if bounded:
        branches.append(rf"(?<!\w)(?:{_trie(bounded)})(?!\w)")
    return re.compile("|".join(branches)) if branches else None


class Redactor:
    """Replaces every known secret value with a marker, strips reply bodies, caps the length. Callable on any text;
    cheap enough for every log line. While it lives, its values are also hidden from every log record (`SECRETS`)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.values = secret_values(secrets)
        self._pattern = compile_secrets(self.values)
        self._short = frozenset(value.strip() for value in self.values if len(value) < MIN_SECRET_LENGTH)
        SECRETS.register(self)

    def __call__(self, text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
        text = self.hide_secrets(text)
        text = _PYDANTIC_INPUT.sub("input_value=(reply not shown)", text)
        text = _HEADER_VALUE.sub(r"\1 (not shown)", text)
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        return text

    def hide_secrets(self, text: str) -> str:
        if self._short and text.strip() in self._short:
            return REDACTED
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text


class SecretRegistry:
    """The secret values of every live `Redactor`, as patterns for the log filter.

    Redactors are held weakly: a server's values stop being needed once nothing uses its redactor any more (its
    connection is gone). The patterns are brought up to date on the first record after a change. Values come and
    go one server at a time (a fleet of a thousand starting, servers edited), and compiling every value again for
    each newcomer would cost seconds, so the values are kept in chunks, each with its pattern, like a binary
    counter: a newcomer's values take along every chunk no bigger than them, so there are at most log2(n) chunks
    and a value is compiled about log2(n) times in all. Values no longer registered are still hidden until their
    chunk is compiled again (harmless), or at once when none is left.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: list[weakref.ref[Redactor]] = []
        self._chunks: list[tuple[frozenset[str], re.Pattern[str] | None]] = []
        # (generation, patterns), replaced whole: a record remembers the generation it was scrubbed at.
        self._current: tuple[int, tuple[re.Pattern[str], ...]] = (0, ())
        self._stale = False

    def register(self, redactor: Redactor) -> None:
        if not redactor.values:
            return
        with self._lock:
            self._members.append(weakref.ref(redactor, self._dropped))
            self._stale = True

    def _dropped(self, _ref: weakref.ref[Redactor]) -> None:
        # No lock: a weakref callback runs wherever the collector runs, possibly in a thread that holds it.
        self._stale = True

    def patterns(self) -> tuple[int, tuple[re.Pattern[str], ...]]:
        """Patterns that together match every registered value (none while no value is registered), with their
        generation (it changes whenever they do)."""
        if self._stale:
            with self._lock:
                if self._stale:
                    self._refresh()
                    # Only now: a record made meanwhile on another thread waits for the lock, not the old patterns.
                    self._stale = False
        return self._current

    def _refresh(self) -> None:
        live = [(ref, ref()) for ref in self._members]
        self._members = [ref for ref, redactor in live if redactor is not None]
        values: frozenset[str] = frozenset().union(*(redactor.values for _, redactor in live if redactor is not None))
        covered: frozenset[str] = frozenset().union(*(chunk for chunk, _ in self._chunks))
        added = values - covered
        if not values:
            self._chunks = []
        elif len(covered) > 2 * len(values) + 64:
            self._chunks = [(values, compile_secrets(values))]  # mostly values nobody holds any more
        elif added:
            chunk = added
            while self._chunks and len(self._chunks[-1][0]) <= len(chunk):
                chunk |= self._chunks.pop()[0]
            chunk &= values
            self._chunks.append((chunk, compile_secrets(chunk)))
        else:
            return  # only values dropped: keep hiding them until their chunk is compiled again
        patterns = tuple(pattern for _, pattern in self._chunks if pattern is not None)
        self._current = (self._current[0] + 1, patterns)


SECRETS = SecretRegistry()
NO_SECRETS = Redactor()

# Set on a record once it was scrubbed (to the registry's generation), so a record passing several handlers is scrubbed
# once: scrubbing twice could hide a value inside the marker itself (a secret "secret" in "[secret]").
_SCRUBBED_AT = "_secrets_scrubbed_at"
_TRACEBACKS = logging.Formatter()


def redact_record(record: logging.LogRecord) -> None:
    """Hide every registered secret value in a record: its message with the args rendered, its args, its traceback
    and its stack. A record with nothing to hide is left as it was (its args and exc_info untouched)."""
    generation, patterns = SECRETS.patterns()
    if not patterns or getattr(record, _SCRUBBED_AT, None) == generation:
        return
    setattr(record, _SCRUBBED_AT, generation)

    def scrub(text: str) -> str:
        for pattern in patterns:
            text = pattern.sub(REDACTED, text)
        return text

    try:
        message = record.getMessage()
    except Exception:  # a broken format string: logging reports msg and args raw, so render them ourselves
        message = f"{record.msg} {record.args!r}"
    scrubbed = scrub(message)
    if scrubbed != message or (record.args and any(pattern.search(repr(record.args)) for pattern in patterns)):
        # The rendered text replaces the template: args that held a secret must not travel to any handler.
        record.msg, record.args = scrubbed, ()
    if record.exc_info or record.exc_text:
        text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)  # type: ignore[arg-type]
        scrubbed = scrub(text)
        record.exc_text = scrubbed
        if scrubbed != text:
            # A formatter would render the exception again from exc_info (and an error reporter read its values).
            record.exc_info = None
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


class SecretsFilter(logging.Filter):
    """Scrubs every record a handler emits (settings.LOGGING puts it on every handler).

    Made once by the logging configuration, it also installs the record factory hook, so records reach handlers
    configured anywhere else (pytest's capture, an error reporter) already scrubbed.
    """

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        install_record_redaction()

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_factory_lock = threading.Lock()
_installed_factory: Callable[..., logging.LogRecord] | None = None


def install_record_redaction() -> None:
    """Scrub every log record when it is made (idempotent; wraps whatever record factory is in place)."""
    global _installed_factory
    with _factory_lock:
        current = logging.getLogRecordFactory()
        if current is _installed_factory:
            return
        previous = current

        def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(make_record)
        _installed_factory = make_record
