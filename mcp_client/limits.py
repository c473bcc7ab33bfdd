"""Limits on everything a server sends: the size of one message, the size of a result's content, the rate of the
messages it sends on its own.

A server is not trusted to be small or quiet. Without these limits one answer of 50 MB was held whole several times
over (the transport's buffer, the parsed JSON, the result's dicts: six such calls took the process from 0.9 to 1.9 GB),
and the stdio reader re-joined its growing buffer for every 64 KiB read, so one such line kept a core busy.

- `Framer` cuts a byte stream into frames (stdio lines, SSE events) holding at most `max_message_bytes` of one frame:
  past the limit it keeps only the frame's first and last bytes (where the JSON-RPC id is) and counts the rest as it
  passes, so an oversized answer is refused before it is held whole.
- `InboundGuard` (one per connection) turns an oversized frame into a JSON-RPC error for the request it answers
  ("answer too large (N bytes, limit M)", see `AnswerTooLarge`), so the caller gets a clear error and the session
  goes on; an oversized notification is dropped. It also rate-limits notifications (token bucket), dropping and
  counting the excess, with one log line per window rather than one per message.
- `LimitingTransport` applies the same to HTTP: JSON bodies and SSE events, counted after content decoding. The stdio
  side is `bounded_stdio_client` (transports.py).
- `content_bytes` measures a parsed result's content (text and base64 blobs) without serialising it again.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from json.decoder import scanstring
from typing import Any, Final

import httpx2
import mcp_types as types
from httpx2 import _decoders
from mcp.shared.message import SessionMessage
from pydantic import BaseModel

logger = logging.getLogger("mcp_client.session")

MIB: Final = 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES: Final = 8 * MIB
DEFAULT_MAX_RESULT_BYTES: Final = 4 * MIB
DEFAULT_NOTIFICATIONS_PER_SECOND: Final = 200.0
DEFAULT_NOTIFICATION_BURST: Final = 1000
# Below this a server's handshake or a page of its tools would not fit: a limit this small is a typo.
SMALLEST_MESSAGE_LIMIT: Final = 64 * 1024

# The code of the error that stands in for a refused answer: in JSON-RPC's range for implementation-defined server
# errors, unused by the SDK. `data.reason` marks it as ours (a server sending the same code is not believed).
ANSWER_TOO_LARGE_CODE: Final = -32090
_REASON: Final = "answer_too_large"

# Kept of an oversized frame: its beginning (a JSON-RPC answer names its id before its result; ours and the SDKs'
# servers all do) and its end (for a server that puts the id last).
HEAD_BYTES: Final = 4096
TAIL_BYTES: Final = 512
# Past the limit an oversized frame is still read to its end (so the session can go on and the error says how large
# it was), but not forever: beyond this many times the limit the stream is given up ("more than N bytes").
DISCARD_FACTOR: Final = 16
MIN_DISCARD_BYTES: Final = 64 * MIB
# One log line per window for drops, whatever their number.
LOG_WINDOW_SECONDS: Final = 10.0
# Messages a session cannot do without even in a flood: a listen stream's acknowledgement (dropping it would end
# the subscription) and a cancellation (the dispatcher settles requests with it).
_ALWAYS_ADMITTED: Final = frozenset({"notifications/subscriptions/acknowledged", "notifications/cancelled"})


@dataclass(frozen=True)
class Limits:
    """What one server may send (settings MCP_MAX_MESSAGE_BYTES, MCP_MAX_RESULT_BYTES,
    MCP_MAX_NOTIFICATIONS_PER_SECOND, MCP_NOTIFICATION_BURST)."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    notifications_per_second: float = DEFAULT_NOTIFICATIONS_PER_SECOND
    notification_burst: int = DEFAULT_NOTIFICATION_BURST

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_result_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < SMALLEST_MESSAGE_LIMIT:
                raise ValueError(f"{name} must be an integer of at least {SMALLEST_MESSAGE_LIMIT} bytes, got {value!r}")
        rate = self.notifications_per_second
        if not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0:
            raise ValueError(f"notifications_per_second must be a positive number, got {rate!r}")
        burst = self.notification_burst
        if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
            raise ValueError(f"notification_burst must be a positive integer, got {burst!r}")

    @property
    def discard_bytes(self) -> int:
        """How far an oversized frame is read before the stream is given up."""
        return max(DISCARD_FACTOR * self.max_message_bytes, MIN_DISCARD_BYTES)


class AnswerTooLarge(Exception):
    """A server's answer over a limit. `at_least`: it was not read to its end, `size` is what was read."""

    def __init__(self, size: int, limit: int, *, at_least: bool = False) -> None:
        self.size = size
        self.limit = limit
        self.at_least = at_least
        what = f"more than {size} bytes" if at_least else f"{size} bytes"
        super().__init__(f"answer too large ({what}, limit {limit})")

    def error_data(self) -> types.ErrorData:
        data = {"reason": _REASON, "size": self.size, "limit": self.limit, "at_least": self.at_least}
        return types.ErrorData(code=ANSWER_TOO_LARGE_CODE, message=str(self), data=data)

    def wire_error(self, request_id: types.RequestId) -> bytes:
        """The JSON-RPC error message that replaces the refused answer on the wire (HTTP bodies, SSE events)."""
        error = types.JSONRPCError(jsonrpc="2.0", id=request_id, error=self.error_data())
        return error.model_dump_json(by_alias=True, exclude_none=True).encode()

    @classmethod
    def from_error(cls, code: int, data: Any) -> AnswerTooLarge | None:
        """Our stand-in error, recognised when it comes back out of the SDK as an MCPError."""
        if code != ANSWER_TOO_LARGE_CODE or not isinstance(data, Mapping) or data.get("reason") != _REASON:
            return None
        size, limit = data.get("size"), data.get("limit")
        if not isinstance(size, int) or not isinstance(limit, int):
            return None
        return cls(size, limit, at_least=data.get("at_least") is True)


# -- frames ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Oversized:
    """A frame over the limit: its size, the bytes kept of its beginning and end; `cut`: not read to its end."""

    size: int
    head: bytes
    tail: bytes
    cut: bool = False


Frame = bytes | Oversized


class Framer:
    """Cuts a byte stream into frames holding at most `limit` bytes of one.

    `events=False`: newline-delimited messages (stdio), frames without their newline. `events=True`: server-sent
    events, frames ending at a blank line, kept with their line ends (normalised to `\\n`, which SSE treats alike),
    so they can be handed on as they are. Work per chunk is a few bytes-level searches, not work per byte or per
    line, and nothing is joined until a frame is complete.
    """

    def __init__(self, limit: int, *, events: bool = False, discard_limit: int | None = None) -> None:
        self._limit = limit
        self._events = events
        self._discard_limit = discard_limit if discard_limit is not None else max(DISCARD_FACTOR * limit, limit)
        self._parts: list[bytes] = []
        self._size = 0
        self._oversized = False
        self._head = b""
        self._tail = b""
        self._ends_in_newline = False  # events: the frame so far ends with a line end
        self._carry_cr = False  # events: the last chunk ended in \r (maybe half of \r\n)
        self.cut = False  # an oversized frame went past the discard limit: the stream is given up

    def feed(self, chunk: bytes) -> list[Frame]:
        if self.cut or not chunk:
            return []
        if self._events:
            chunk = self._normalise(chunk)
        frames: list[Frame] = []
        start, end_of_chunk = 0, len(chunk)
        while start < end_of_chunk:
            end = self._frame_end(chunk, start)
            if end < 0:
                self._add(chunk[start:] if start else chunk)
                break
            # stdio frames leave out their newline; events keep theirs (they are handed on as bytes).
            stop = end if self._events else end - 1
            self._add(chunk[start:stop])
            frames.append(self._finish())
            start = end
        if self._oversized and self._size > self._discard_limit:
            self.cut = True
            frames.append(Oversized(self._size, self._head, self._tail, cut=True))
            self._reset()
        return frames

    def flush(self) -> list[Frame]:
        """The end of the stream: what is left of an unterminated frame."""
        if self._carry_cr:
            self._carry_cr = False
            self._add(b"\n")
        if not self._size or self.cut:
            return []
        return [self._finish()]

    def _normalise(self, chunk: bytes) -> bytes:
        if self._carry_cr:
            chunk = b"\r" + chunk
            self._carry_cr = False
        if chunk.endswith(b"\r"):
            self._carry_cr = True
            chunk = chunk[:-1]
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk

    def _frame_end(self, chunk: bytes, start: int) -> int:
        """Index just past the end of the frame that continues at `start`, or -1."""
        if not self._events:
            index = chunk.find(b"\n", start)
            return -1 if index < 0 else index + 1
        if self._ends_in_newline and chunk.startswith(b"\n", start):
            return start + 1
        index = chunk.find(b"\n\n", start)
        return -1 if index < 0 else index + 2

    def _add(self, piece: bytes) -> None:
        if not piece:
            return
        if self._events:
            self._ends_in_newline = piece.endswith(b"\n")
        self._size += len(piece)
        if self._oversized:
            self._tail = (self._tail + piece[-TAIL_BYTES:])[-TAIL_BYTES:]
            return
        self._parts.append(piece)
        if self._size <= self._limit:
            return
        # Over the limit: keep the beginning and the end, let the rest go.
        whole_head = b"".join(self._take(self._parts, HEAD_BYTES))
        self._head = whole_head[:HEAD_BYTES]
        self._tail = b"".join(self._take(reversed(self._parts), TAIL_BYTES, from_end=True))[-TAIL_BYTES:]
        self._parts = []
        self._oversized = True

    @staticmethod
    def _take(parts: Iterable[bytes], count: int, *, from_end: bool = False) -> list[bytes]:
        taken: list[bytes] = []
        total = 0
        for part in parts:
            taken.append(part[-count:] if from_end else part[:count])
            total += len(taken[-1])
            if total >= count:
                break
        return taken[::-1] if from_end else taken

    def _finish(self) -> Frame:
        frame: Frame
        if self._oversized:
            frame = Oversized(self._size, self._head, self._tail)
        else:
            frame = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._reset()
        return frame

    def _reset(self) -> None:
        self._parts = []
        self._size = 0
        self._oversized = False
        self._head = self._tail = b""
        self._ends_in_newline = False


# -- what an oversized message was --------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
# The id as the last member of the top-level object: `"id": 7}` or `"id": "abc"}` at the very end.
_ID_LAST = re.compile(rb'"id"\s*:\s*(-?\d{1,19}|"(?:[^"\\\r\n]|\\.){0,200}")\s*\}\s*$')
_INCOMPLETE = object()


@dataclass(frozen=True)
class MessageHead:
    """What the kept bytes of an oversized message say about it."""

    request_id: types.RequestId | None
    unsolicited: bool  # it has a method: a notification or a request of the server's own, not an answer


def _members(text: str) -> dict[str, Any]:
    """The top-level members of a JSON object that can be read from its beginning (values that are complete)."""
    found: dict[str, Any] = {}
    index = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("{", index):
        return found
    index += 1
    while True:
        index = _WS.match(text, index).end()  # type: ignore[union-attr]
        if not text.startswith('"', index):
            return found
        try:
            key, index = scanstring(text, index + 1)
        except ValueError:
            return found
        index = _WS.match(text, index).end()  # type: ignore[union-attr]
        if not text.startswith(":", index):
            return found
        index = _WS.match(text, index + 1).end()  # type: ignore[union-attr]
        try:
            value, index = _DECODER.raw_decode(text, index)
        except (ValueError, RecursionError):
            found[key] = _INCOMPLETE  # the big value, cut short: nothing after it is in the head
            return found
        found[key] = value
        index = _WS.match(text, index).end()  # type: ignore[union-attr]
        if not text.startswith(",", index):
            return found
        index += 1


def _valid_id(value: Any) -> types.RequestId | None:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def read_head(head: bytes, tail: bytes, *, events: bool = False) -> MessageHead:
    """The id of an oversized message and whether it is unsolicited, from its first and last bytes."""
    if events:
        # An SSE event: the JSON is in its data field ("event: message\ndata: {...").
        start = head.find(b"data:")
        head = head[start + 5 :] if start >= 0 else b""
    members = _members(head.decode("utf-8", errors="replace"))
    unsolicited = "method" in members
    request_id = _valid_id(members.get("id"))
    if request_id is None and not unsolicited:
        match = _ID_LAST.search(tail)
        if match is not None:
            try:
                request_id = _valid_id(json.loads(match.group(1)))
            except ValueError:
                request_id = None
    return MessageHead(request_id, unsolicited)


# -- the guard of one connection ----------------------------------------------------------------------------------


class _WindowedLog:
    """Counts events and logs at most one line per window about them (the first at once, then a summary)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._window_start: float | None = None
        self._in_window = 0

    def record(self, log: Callable[[int, float], None]) -> None:
        now = self._clock()
        self._in_window += 1
        if self._window_start is None or now - self._window_start >= LOG_WINDOW_SECONDS:
            log(self._in_window, 0.0 if self._window_start is None else now - self._window_start)
            self._window_start = now
            self._in_window = 0


class InboundGuard:
    """What one connection lets through of what its server sends: oversized frames become errors for the requests
    they answer (or are dropped), and the messages a server sends on its own are rate-limited.

    Counters (`refused_answers`, `dropped_oversized`, `dropped_notifications`) are cumulative over the connection's
    sessions; the token bucket carries over a reconnect too (a server cannot reset its quota by dying).
    """

    def __init__(
        self,
        key: str,
        limits: Limits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key = key
        self.limits = limits or Limits()
        self._clock = clock
        self._tokens = float(self.limits.notification_burst)
        self._refilled_at = clock()
        self.refused_answers = 0
        self.dropped_oversized = 0
        self.dropped_notifications = 0
        self._refusals_log = _WindowedLog(clock)
        self._drops_log = _WindowedLog(clock)

    @property
    def max_message_bytes(self) -> int:
        return self.limits.max_message_bytes

    def framer(self, *, events: bool = False, limit: int | None = None) -> Framer:
        return Framer(limit or self.max_message_bytes, events=events, discard_limit=self.limits.discard_bytes)

    # -- oversized frames

    def refuse(
        self,
        frame: Oversized,
        *,
        limit: int | None = None,
        answer_to: types.RequestId | None = None,
        fallback_id: types.RequestId | None = None,
        events: bool = False,
    ) -> tuple[types.RequestId, AnswerTooLarge] | None:
        """What stands in for an oversized frame: the request it answers and the error for it, or None (dropped).

        `answer_to`: the frame is the answer to this request (an HTTP POST's JSON body). `fallback_id`: the request
        whose stream the frame came on, if the frame does not say (a POST's event stream, where the SDK answers
        that request whatever id the answer names).
        """
        too_large = AnswerTooLarge(frame.size, limit or self.max_message_bytes, at_least=frame.cut)
        request_id = answer_to
        if request_id is None:
            head = read_head(frame.head, frame.tail, events=events)
            if not head.unsolicited:
                request_id = head.request_id if head.request_id is not None else fallback_id
        if request_id is None:
            self.dropped_oversized += 1
            self._refusals_log.record(
                lambda count, _: logger.warning(
                    "MCP server %r sent a message that is not an answer, %s; dropped (%d such in this window)",
                    self.key,
                    str(too_large).removeprefix("answer "),
                    count,
                )
            )
            return None
        self.refused_answers += 1
        self._refusals_log.record(
            lambda count, _: logger.warning(
                "MCP server %r: refused an %s (%d refused in this window, %d in all)",
                self.key,
                too_large,
                count,
                self.refused_answers,
            )
        )
        return request_id, too_large

    def refused_message(self, frame: Oversized, **options: Any) -> SessionMessage | None:
        """`refuse` as the SessionMessage the SDK's dispatcher resolves the waiting request with."""
        refused = self.refuse(frame, **options)
        if refused is None:
            return None
        request_id, too_large = refused
        return SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=request_id, error=too_large.error_data()))

    # -- the rate of unsolicited messages

    def admit(self, item: object) -> bool:
        """Whether a message read from the transport goes on to the session.

        Answers always do. Notifications, requests of the server's own and unparseable lines share one token
        bucket (MCP_MAX_NOTIFICATIONS_PER_SECOND, burst MCP_NOTIFICATION_BURST): beyond it they are dropped
        before the SDK parses them into typed objects and spawns a task for each.
        """
        if isinstance(item, SessionMessage):
            message = item.message
            if isinstance(message, types.JSONRPCResponse | types.JSONRPCError):
                return True
            if isinstance(message, types.JSONRPCNotification) and message.method in _ALWAYS_ADMITTED:
                return True
        now = self._clock()
        rate, burst = self.limits.notifications_per_second, self.limits.notification_burst
        self._tokens = min(float(burst), self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.dropped_notifications += 1
        self._drops_log.record(self._log_drops)
        return False

    def _log_drops(self, count: int, seconds: float) -> None:
        limits = self.limits
        if seconds:
            logger.warning(
                "MCP server %r sends more than %g notifications/s (burst %d): dropped %d in the last %.0fs, %d in all",
                self.key,
                limits.notifications_per_second,
                limits.notification_burst,
                count,
                seconds,
                self.dropped_notifications,
            )
        else:
            logger.warning(
                "MCP server %r sends more than %g notifications/s (burst %d): dropping the excess",
                self.key,
                limits.notifications_per_second,
                limits.notification_burst,
            )


# -- the size of a parsed result ----------------------------------------------------------------------------------


def _text_bytes(text: str) -> int:
    # isascii() is O(1) on CPython's compact strings; only other text is encoded to be counted.
    return len(text) if text.isascii() else len(text.encode("utf-8", errors="surrogatepass"))


def _json_bytes(value: Any, budget: int) -> tuple[int, bool]:
    """About the JSON size of a parsed value (strings and numbers; punctuation counted roughly), and whether it was
    counted whole: the walk stops once past `budget`."""
    total = 0
    stack = [value]
    while stack:
        if total > budget:
            return total, False
        item = stack.pop()
        if isinstance(item, str):
            total += _text_bytes(item) + 2
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                total += _text_bytes(str(key)) + 4
                stack.append(inner)
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, BaseModel):
            stack.append(item.model_dump(by_alias=True, exclude_none=True))
        else:
            total += 8
    return total, True


def content_bytes(items: Iterable[Any], structured: Any = None, *, budget: int) -> tuple[int, bool]:
    """The size of a result's content (the text and base64 data of its items, plus its structured content), and
    whether that size is exact rather than a lower bound.

    Read from the parsed objects (text, data, blob fields: their length is known without a copy), so a result is
    not serialised a second time to be measured; structured content is walked only until it is past `budget`.
    """
    total = 0
    for item in items:
        for field_name in ("text", "data", "blob"):
            value = getattr(item, field_name, None)
            if isinstance(value, str):
                total += _text_bytes(value)
        resource = getattr(item, "resource", None)
        if resource is not None:
            total += content_bytes([resource], budget=budget)[0]
    if structured is None:
        return total, True
    structured_size, whole = _json_bytes(structured, max(budget - total, 0))
    return total + structured_size, whole


# -- HTTP bodies ------------------------------------------------------------------------------------------------


class BodyTooLarge(httpx2.StreamError):
    """A response body over the limit that answers no request (a DELETE's, a notification POST's).

    A StreamError because that is what the SDK's HTTP transport expects from a body it cannot read: it then fails
    the one exchange, not the session.
    """


def _posted_request_id(request: httpx2.Request) -> types.RequestId | None:
    """The id of the JSON-RPC request a POST carries (its answer comes back on this response), if it is one."""
    if request.method != "POST":
        return None
    try:
        body = json.loads(request.content)
    except (httpx2.RequestNotRead, ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or "method" not in body:
        return None
    return _valid_id(body.get("id"))


class LimitingTransport(httpx2.AsyncBaseTransport):
    """Bounds every response body of a session's HTTP client, as it streams in.

    - A JSON body (a POST's answer) is held up to the limit and handed on whole, or replaced by the JSON-RPC error
      for the POST's request ("answer too large"); a Content-Length over the limit is refused before any of it is
      read.
    - An event stream (a POST's answer stream, the GET stream, legacy SSE) is handed on event by event; an event over
      the limit is replaced by that error event (or dropped, if it answers nothing), and the stream goes on.
    - Compressed bodies are inflated here (httpx2's own decoders, which inflate in bounded pieces) so the limit counts
      what the SDK would hold, not what the wire carried: a small gzip bomb cannot pass as small.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport, guard: InboundGuard, *, event_limit: int | None = None):
        self._inner = inner
        self._guard = guard
        self._event_limit = min(event_limit or guard.max_message_bytes, guard.max_message_bytes)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if not isinstance(response.stream, httpx2.AsyncByteStream):
            return response
        encodings = [
            value.strip().lower()
            for value in response.headers.get_list("content-encoding", split_commas=True)
            if value.strip().lower() != "identity"
        ]
        # httpx2's decoder chain (private, pinned through the SDK): the same decoding the Response would apply.
        decoder = _decoders.MultiDecoder(encodings) if encodings else None
        events = response.headers.get("content-type", "").lower().startswith("text/event-stream")
        stream: httpx2.AsyncByteStream
        if events:
            stream = _LimitedEvents(response.stream, decoder, self._guard, self._event_limit, request)
        else:
            declared = response.headers.get("content-length", "")
            length = int(declared) if declared.isdigit() and decoder is None else None
            stream = _LimitedBody(response.stream, decoder, self._guard, request, length)
        # The body handed on is decoded, and may be a stand-in of another length.
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-length", "content-encoding")
        ]
        return httpx2.Response(
            status_code=response.status_code,
            headers=headers,
            stream=stream,
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _decoded(inner: httpx2.AsyncByteStream, decoder: Any) -> AsyncIterator[bytes]:
    async for raw in inner:
        if decoder is None:
            yield raw
            continue
        for piece in decoder.decode(raw):
            yield piece
    if decoder is not None:
        for piece in decoder.flush():
            yield piece


class _LimitedBody(httpx2.AsyncByteStream):
    def __init__(
        self,
        inner: httpx2.AsyncByteStream,
        decoder: Any,
        guard: InboundGuard,
        request: httpx2.Request,
        declared_length: int | None,
    ) -> None:
        self._inner = inner
        self._decoder = decoder
        self._guard = guard
        self._request = request
        self._declared_length = declared_length

    async def __aiter__(self) -> AsyncIterator[bytes]:
        limit = self._guard.max_message_bytes
        if self._declared_length is not None and self._declared_length > limit:
            yield self._refused(Oversized(self._declared_length, b"", b""))
            return  # not one byte of it read; closing the response drops the connection
        parts: list[bytes] = []
        size = 0
        discard_limit = self._guard.limits.discard_bytes
        async for piece in _decoded(self._inner, self._decoder):
            size += len(piece)
            if size <= limit:
                parts.append(piece)
                continue
            parts = []  # over the limit: counted to the end (or the discard limit), never held
            if size > discard_limit:
                yield self._refused(Oversized(size, b"", b"", cut=True))
                return
        if size > limit:
            yield self._refused(Oversized(size, b"", b""))
            return
        for part in parts:
            yield part

    def _refused(self, frame: Oversized) -> bytes:
        request_id = _posted_request_id(self._request)
        refused = self._guard.refuse(frame, answer_to=request_id) if request_id is not None else None
        if refused is None:
            too_large = AnswerTooLarge(frame.size, self._guard.max_message_bytes, at_least=frame.cut)
            raise BodyTooLarge(str(too_large))
        request_id, too_large = refused
        return too_large.wire_error(request_id)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _LimitedEvents(httpx2.AsyncByteStream):
    def __init__(
        self,
        inner: httpx2.AsyncByteStream,
        decoder: Any,
        guard: InboundGuard,
        limit: int,
        request: httpx2.Request,
    ) -> None:
        self._inner = inner
        self._decoder = decoder
        self._guard = guard
        self._limit = limit
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        framer = self._guard.framer(events=True, limit=self._limit)
        async for piece in _decoded(self._inner, self._decoder):
            for frame in framer.feed(piece):
                event = self._event(frame)
                if event:
                    yield event
            if framer.cut:
                return  # an endless event: the stream is given up (its request has its error already)
        for frame in framer.flush():
            event = self._event(frame)
            if event:
                yield event

    def _event(self, frame: Frame) -> bytes:
        if isinstance(frame, bytes):
            return frame
        refused = self._guard.refuse(
            frame, limit=self._limit, fallback_id=_posted_request_id(self._request), events=True
        )
        if refused is None:
            return b""
        request_id, too_large = refused
        return b"event: message\ndata: " + too_large.wire_error(request_id) + b"\n\n"

    async def aclose(self) -> None:
        await self._inner.aclose()
