"""`/ws/events/`: the pipeline's events for one browser, filtered, batched, resumable, pausable.

Protocol (JSON text frames; docs/events.md has it with examples):
  in:  {"type": "subscribe", "streams": ["quotes.*"], "servers": [...], "kinds": [...], "after": {"<stream>": seq}}
       {"type": "unsubscribe", "streams": [...]}   {"type": "pause"}   {"type": "continue"}
  out: {"type": "subscribed", "streams": [...], "servers": [...], "kinds": [...]}   {"type": "paused"}  (acks)
       {"type": "batch", "events": [{"stream", "seq", "kind", "server", "at", "payload"}, ...]}
       {"type": "gap", "stream": ..., "missed": n}
       {"type": "error", "message": ...}   (the socket stays usable)

Every socket joins one channel-layer group and receives every batch the forwarder hands over; it keeps what its
filter wants. It knows the last sequence number of every stream it follows, so a duplicate is dropped and a hole
(events dropped anywhere on the way, or while paused) becomes a gap frame with the number missed. `after` replays
each named stream from the history first, then goes on live with no hole and no duplicate between the two.
Leading-edge batching: on a socket that sent no frame within PIPELINE_SOCKET_BATCH_SECONDS (idle), events go out
at once; after a frame, what arrives within that window waits until the window since that frame is over and goes
as one frame (or sooner at PIPELINE_SOCKET_BATCH_MAX events). So a lone status change is not held, and a busy
socket still sends at most about one frame per window. A paused socket keeps at most PIPELINE_SOCKET_BUFFER events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from pipeline.delivery import EVENTS_GROUP
from pipeline.events import Event, check_stream_name
from pipeline.filters import EventFilter, check_stream_pattern
from pipeline.metrics import PIPELINE_METRICS
from pipeline.stores import event_store
from registry.permissions import Role, role_of

logger = logging.getLogger(__name__)


def _disconnect_errors() -> tuple[type[BaseException], ...]:
    """What a send raises when the browser has gone: daphne's (autobahn's Disconnected), uvicorn's
    (ClientDisconnected, an OSError) and a reset connection. An expected end of a socket, not an error."""
    errors: list[type[BaseException]] = [OSError]
    try:
        from autobahn.exception import Disconnected
    except ImportError:  # served by something other than daphne
        pass
    else:
        errors.append(Disconnected)
    return tuple(errors)


DISCONNECTS = _disconnect_errors()

MAX_PATTERNS = 50
MAX_FILTER_VALUES = 100
MAX_REPLAY_PER_STREAM = 10_000

OPEN_SOCKETS: weakref.WeakSet[EventsConsumer] = weakref.WeakSet()


class BadMessage(ValueError):
    pass


def _string_list(message: dict[str, Any], field: str, limit: int) -> list[str] | None:
    if field not in message:
        return None
    value = message[field]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise BadMessage(f"'{field}' must be a list of non-empty strings")
    if len(value) > limit:
        raise BadMessage(f"'{field}' has at most {limit} entries")
    return value


def _after(message: dict[str, Any]) -> dict[str, int]:
    raw = message.get("after", {})
    if not isinstance(raw, dict):
        raise BadMessage("'after' must be an object of stream name to sequence number")
    after: dict[str, int] = {}
    for stream, seq in raw.items():
        try:
            check_stream_name(stream)
        except ValueError as error:
            raise BadMessage(f"'after': {error}") from error
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise BadMessage(f"'after.{stream}' must be a sequence number (an integer >= 0)")
        after[stream] = seq
    return after


class EventsConsumer(AsyncWebsocketConsumer):
    # Class defaults, so that disconnect() after a refused handshake (connect() returned early) finds them.
    joined = False
    flush_timer: asyncio.TimerHandle | None = None
    gone = False  # the browser went away: nothing more is sent
    flush_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        if await self._role() < Role.VIEWER:
            await self.close()  # before accept(): the handshake is refused (HTTP 403)
            return
        self.filter = EventFilter.of(())
        self.last_seq: dict[str, int] = {}
        # Wire events ([stream, seq, kind, server, at, json text]) and gap markers (stream, missed), in order.
        self.outbox: deque[list[Any] | tuple[str, int]] = deque()
        self.outbox_events = 0
        self.missed_while_paused: dict[str, int] = {}
        self.paused = False
        self.replaying = False
        self.held: list[list[Any]] = []
        self.wanted_streams: dict[str, bool] = {}
        self.flush_lock = asyncio.Lock()
        self.flush_timer: asyncio.TimerHandle | None = None
        # The loop time of the last frame of events; -inf: none yet, so the first events go at once.
        self.last_frame_at = float("-inf")
        self.sent = 0
        await self.channel_layer.group_add(EVENTS_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        OPEN_SOCKETS.add(self)

    async def disconnect(self, code: int) -> None:
        OPEN_SOCKETS.discard(self)
        self.gone = True
        if self.flush_timer is not None:
            self.flush_timer.cancel()
        if self.joined:
            await self.channel_layer.group_discard(EVENTS_GROUP, self.channel_name)

    # -- from the browser ------------------------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            if text_data is None:
                raise BadMessage("send JSON text frames")
            try:
                message = json.loads(text_data)
            except ValueError as error:
                raise BadMessage("the message is not JSON") from error
            if not isinstance(message, dict):
                raise BadMessage("a message is a JSON object with a 'type'")
            kind = message.get("type")
            if kind == "subscribe":
                await self._subscribe(message)
            elif kind == "unsubscribe":
                self._unsubscribe(message)
            elif kind == "pause":
                self.paused = True
                await self._send_json({"type": "paused"})
            elif kind == "continue":
                self.paused = False
                await self._flush()
            else:
                raise BadMessage("'type' must be one of subscribe, unsubscribe, pause, continue")
        except BadMessage as error:
            await self._send_json({"type": "error", "message": str(error)})

    async def _subscribe(self, message: dict[str, Any]) -> None:
        streams = _string_list(message, "streams", MAX_PATTERNS)
        if not streams:
            raise BadMessage("'streams' is required: a list of stream patterns such as quotes.*")
        for pattern in streams:
            try:
                check_stream_pattern(pattern)
            except ValueError as error:
                raise BadMessage(f"'streams': {error}") from error
        servers = _string_list(message, "servers", MAX_FILTER_VALUES)
        kinds = _string_list(message, "kinds", MAX_FILTER_VALUES)
        after = _after(message)
        new_filter = EventFilter(
            streams=self.filter.streams | frozenset(streams),
            servers=frozenset(servers) if servers is not None else self.filter.servers,
            kinds=frozenset(kinds) if kinds is not None else self.filter.kinds,
        )
        for stream in after:
            if not new_filter.wants_stream(stream):
                raise BadMessage(f"'after.{stream}' names a stream this subscription does not include")
        self.filter = new_filter
        self.wanted_streams.clear()
        await self._send_json(
            {
                "type": "subscribed",
                "streams": sorted(new_filter.streams),
                "servers": sorted(new_filter.servers),
                "kinds": sorted(new_filter.kinds),
            }
        )
        if after:
            await self._replay(after)

    def _unsubscribe(self, message: dict[str, Any]) -> None:
        streams = _string_list(message, "streams", MAX_PATTERNS)
        if not streams:
            raise BadMessage("'streams' is required: the patterns to stop following")
        self.filter = EventFilter(self.filter.streams - frozenset(streams), self.filter.servers, self.filter.kinds)
        self.wanted_streams.clear()
        for stream in list(self.last_seq):
            if not self.filter.wants_stream(stream):
                del self.last_seq[stream]

    async def _replay(self, after: dict[str, int]) -> None:
        """History first, then live: events that arrive meanwhile wait in `held` and are deduplicated after."""
        self.replaying = True
        try:
            for stream, seq in after.items():
                events, missed = await self._history(stream, seq)
                if missed:
                    self._queue_gap(stream, missed)
                last = seq
                for event in events:
                    last = event.seq
                    wire = event.as_wire()
                    if self._passes(wire):
                        self._queue_event(wire)
                self.last_seq[stream] = max(last, self.last_seq.get(stream, 0))
        finally:
            self.replaying = False
        held, self.held = self.held, []
        for wire in held:
            self._accept(wire)
        await self._flush()

    @database_sync_to_async
    def _history(self, stream: str, after: int) -> tuple[list[Event], int]:
        store = event_store()
        try:
            events: list[Event] = []
            page = store.read(stream, after=after, limit=1_000)
            missed = page.missed
            while page.events and len(events) < MAX_REPLAY_PER_STREAM:
                events.extend(page.events)
                page = store.read(stream, after=events[-1].seq, limit=1_000)
            return events, missed
        finally:
            store.close()

    # -- from the pipeline -----------------------------------------------------------------------------------------

    async def pipeline_batch(self, message: dict[str, Any]) -> None:
        for wire in message["events"]:
            if self.replaying:
                if self._wants_stream(wire[0]):
                    self.held.append(wire)
                continue
            self._accept(wire)
        if self.outbox_events >= settings.PIPELINE_SOCKET_BATCH_MAX:
            await self._flush()
        elif self.outbox and self.flush_timer is None and not self.paused:
            loop = asyncio.get_running_loop()
            wait = self.last_frame_at + settings.PIPELINE_SOCKET_BATCH_SECONDS - loop.time()
            if wait <= 0:
                await self._flush()  # idle: nothing to batch with, so no reason to wait
            else:
                self.flush_timer = loop.call_later(wait, self._flush_soon)

    def _wants_stream(self, stream: str) -> bool:
        wanted = self.wanted_streams.get(stream)
        if wanted is None:
            wanted = self.wanted_streams[stream] = self.filter.wants_stream(stream)
        return wanted

    def _passes(self, wire: list[Any]) -> bool:
        return (not self.filter.servers or wire[3] in self.filter.servers) and (
            not self.filter.kinds or wire[2] in self.filter.kinds
        )

    def _accept(self, wire: list[Any]) -> None:
        stream, seq = wire[0], wire[1]
        if not self._wants_stream(stream):
            return
        last = self.last_seq.get(stream)
        if last is not None:
            if seq <= last:
                return  # already sent (replayed, or delivered twice)
            if seq > last + 1:
                self._queue_gap(stream, seq - last - 1)
        self.last_seq[stream] = seq
        if self._passes(wire):
            self._queue_event(wire)

    def _queue_event(self, wire: list[Any]) -> None:
        self.outbox.append(wire)
        self.outbox_events += 1
        if self.paused and self.outbox_events > settings.PIPELINE_SOCKET_BUFFER:
            self._drop_oldest_event()

    def _queue_gap(self, stream: str, missed: int) -> None:
        self.outbox.append((stream, missed))

    def _drop_oldest_event(self) -> None:
        for index, item in enumerate(self.outbox):
            if isinstance(item, list):
                del self.outbox[index]
                self.outbox_events -= 1
                stream = item[0]
                self.missed_while_paused[stream] = self.missed_while_paused.get(stream, 0) + 1
                return

    def _flush_soon(self) -> None:
        self.flush_timer = None
        # Kept and watched: a task nobody awaits must have its end read, or an error in it is reported only as
        # "Task exception was never retrieved" when it is collected.
        self.flush_task = asyncio.get_running_loop().create_task(self._flush())
        self.flush_task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        if self.flush_task is task:
            self.flush_task = None
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("pipeline socket: a timed flush failed", exc_info=error)

    async def _flush(self) -> None:
        if self.paused or self.gone:
            return
        async with self.flush_lock:
            if self.flush_timer is not None:
                self.flush_timer.cancel()
                self.flush_timer = None
            items, self.outbox, self.outbox_events = self.outbox, deque(), 0
            missed, self.missed_while_paused = self.missed_while_paused, {}
            if items or missed:
                self.last_frame_at = asyncio.get_running_loop().time()
            for stream, count in missed.items():
                await self._send_gap(stream, count)
            now = time.time()
            batch: list[str] = []
            for item in items:
                if isinstance(item, tuple):
                    await self._send_batch(batch)
                    batch = []
                    await self._send_gap(*item)
                    continue
                PIPELINE_METRICS.delivered_to_browser(item[4], now)
                batch.append(item[5])
                if len(batch) >= settings.PIPELINE_SOCKET_BATCH_MAX:
                    await self._send_batch(batch)
                    batch = []
            await self._send_batch(batch)

    async def _send_batch(self, batch: list[str]) -> None:
        if not batch or self.gone:
            return
        PIPELINE_METRICS.sent_to_browsers += len(batch)
        PIPELINE_METRICS.socket_batch.add(len(batch))
        self.sent += len(batch)
        # The events' JSON was encoded once by the forwarder; a frame is the texts joined.
        await self._send_frame('{"type":"batch","events":[' + ",".join(batch) + "]}")

    async def _send_gap(self, stream: str, missed: int) -> None:
        PIPELINE_METRICS.browser_gaps += 1
        await self._send_json({"type": "gap", "stream": stream, "missed": missed})

    async def _send_json(self, content: dict[str, Any]) -> None:
        await self._send_frame(json.dumps(content, separators=(",", ":")))

    async def _send_frame(self, text: str) -> None:
        """The one way out. A browser that goes away mid-flush (a closed tab, a lost network) makes the server's
        send raise: that is how a socket ends, so it is noted at debug level and nothing more is sent."""
        if self.gone:
            return
        try:
            await self.send(text_data=text)
        except DISCONNECTS as error:
            self.gone = True
            self.outbox.clear()
            self.outbox_events = 0
            if self.flush_timer is not None:
                self.flush_timer.cancel()
                self.flush_timer = None
            logger.debug("pipeline socket: the browser went away during a send (%r)", error)

    @database_sync_to_async
    def _role(self) -> Role:
        return role_of(self.scope.get("user"))

    def describe(self) -> dict[str, Any]:
        return {
            "streams": sorted(self.filter.streams),
            "paused": self.paused,
            "buffered": self.outbox_events,
            "sent": self.sent,
        }
