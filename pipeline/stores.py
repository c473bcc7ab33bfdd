"""Event history: where sequence numbers come from and where events are kept, in two flavours.

- `DatabaseEventStore` (the embedded default): sequence numbers are counted in this process (seeded from the
  table at start), events are written in batches by one database thread.
- `RedisEventStore` (REDIS_URL set): one Lua script gives a batch its sequence numbers (INCRBY per stream) and
  appends it to Redis Streams (XADD with the sequence number as the entry id, MAXLEN ~ trimmed) atomically, so
  several processes publishing to one stream never repeat a number and history has no holes.

Both answer `read(stream, after=..., since=..., limit=...)` in order, with how many events asked for fell out of
retention (`missed`), so a reader resuming after a sequence number knows whether it got everything.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min, Q

from fleet.orm_worker import OrmWorker
from pipeline.bus import LocalSequencer
from pipeline.events import Event
from pipeline.models import StoredEvent

logger = logging.getLogger(__name__)

MAX_READ = 1_000


@dataclass
class HistoryPage:
    events: list[Event] = field(default_factory=list)
    missed: int = 0
    first_seq: int | None = None
    last_seq: int | None = None


def _missed(after: int | None, first_seq: int | None) -> int:
    if after is None or first_seq is None:
        return 0
    return max(0, first_seq - after - 1)


class DatabaseEventStore:
    persists_on_sequence = False

    def __init__(self, worker: OrmWorker | None = None) -> None:
        # A worker handed in belongs to the caller (the fleet application), which stops it; else one of its own.
        self._worker = worker
        self._owns_worker = worker is None

    def sequencer(self) -> LocalSequencer:
        return LocalSequencer(seed=self._seed)

    async def _seed(self) -> dict[str, int]:
        return await self._db().run(self.last_seqs)

    def _db(self) -> OrmWorker:
        if self._worker is None:
            self._worker = OrmWorker(name="pipeline-db")
        return self._worker

    def close(self) -> None:
        if self._worker is not None and self._owns_worker:
            self._worker.shutdown(wait=True)
            self._worker = None

    # -- writes ----------------------------------------------------------------------------------------------------

    async def persist(self, batch: list[Event]) -> None:
        if batch:
            await self._db().run(self.write, batch)

    @staticmethod
    def write(batch: list[Event]) -> None:
        rows = [
            StoredEvent(
                stream=event.stream,
                seq=event.seq,
                kind=event.kind,
                server=event.server or "",
                at=datetime.fromtimestamp(event.at, UTC),
                payload=event.payload,
            )
            for event in batch
        ]
        with transaction.atomic():
            # A sequence number already stored (a replayed batch after a failure) is not a second event.
            StoredEvent.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)

    async def prune_async(self) -> int:
        return await self._db().run(self.prune)

    @staticmethod
    def prune(max_age_seconds: float | None = None, max_per_stream: int | None = None) -> int:
        """Drop events older than the age limit and beyond the count limit, per stream. A stream's newest event is
        kept whatever its age: its number is where the stream's numbering goes on after a restart."""
        max_age = settings.PIPELINE_RETENTION_SECONDS if max_age_seconds is None else max_age_seconds
        keep = max(1, settings.PIPELINE_RETENTION_PER_STREAM if max_per_stream is None else max_per_stream)
        cutoff = datetime.fromtimestamp(time.time() - max_age, UTC)
        removed = 0
        for row in StoredEvent.objects.values("stream").annotate(last=Max("seq")):
            floor = row["last"] - keep  # everything at or below this is over the count limit
            stale = Q(at__lt=cutoff, seq__lt=row["last"]) | Q(seq__lte=floor)
            count, _ = StoredEvent.objects.filter(Q(stream=row["stream"]) & stale).delete()
            removed += count
        return removed

    # -- reads -----------------------------------------------------------------------------------------------------

    @staticmethod
    def last_seqs() -> dict[str, int]:
        return {row["stream"]: row["last"] for row in StoredEvent.objects.values("stream").annotate(last=Max("seq"))}

    @staticmethod
    def last_seq(stream: str) -> int:
        return StoredEvent.objects.filter(stream=stream).aggregate(last=Max("seq"))["last"] or 0

    @staticmethod
    def read(stream: str, *, after: int | None = None, since: datetime | None = None, limit: int = 100) -> HistoryPage:
        limit = max(1, min(limit, MAX_READ))
        bounds = StoredEvent.objects.filter(stream=stream).aggregate(first=Min("seq"), last=Max("seq"))
        rows = StoredEvent.objects.filter(stream=stream)
        if after is not None:
            rows = rows.filter(seq__gt=after)
        if since is not None:
            rows = rows.filter(at__gte=since)
        events = [
            Event(
                stream=row.stream,
                seq=row.seq,
                kind=row.kind,
                server=row.server or None,
                at=row.at.timestamp(),
                payload=row.payload,
            )
            for row in rows.order_by("seq")[:limit]
        ]
        return HistoryPage(events, _missed(after, bounds["first"]), bounds["first"], bounds["last"])


# Gives a batch its sequence numbers and appends it, per stream, in one atomic step. ARGV: maxlen, prefix, then
# for each stream: its name, the count n, and n encoded events. Returns each stream's first sequence number.
SEQUENCE_AND_APPEND = """
local maxlen = ARGV[1]
local prefix = ARGV[2]
local i = 3
local firsts = {}
while i <= #ARGV do
  local stream = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  local last = redis.call('INCRBY', prefix .. 'seq:' .. stream, n)
  local first = last - n + 1
  redis.call('SADD', prefix .. 'streams', stream)
  local key = prefix .. 'events:' .. stream
  for k = 0, n - 1 do
    redis.call('XADD', key, 'MAXLEN', '~', maxlen, tostring(first + k) .. '-0', 'e', ARGV[i + k])
  end
  i = i + n
  firsts[#firsts + 1] = first
end
return firsts
"""


def _encode(event: Event) -> str:
    return json.dumps([event.kind, event.server, event.at, event.payload], separators=(",", ":"))


def _decode(stream: str, entry_id: bytes | str, fields: dict[Any, Any]) -> Event:
    raw = fields.get(b"e") or fields.get("e")
    kind, server, at, payload = json.loads(raw)
    seq = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-", 1)[0])
    return Event(stream=stream, seq=seq, kind=kind, server=server, at=at, payload=payload)


class RedisEventStore:
    persists_on_sequence = True

    def __init__(self, url: str | None = None, prefix: str | None = None) -> None:
        self.url = url or settings.REDIS_URL
        self.prefix = prefix if prefix is not None else settings.PIPELINE_REDIS_PREFIX
        self._async_client: Any = None
        self._script: Any = None
        self._sync_client: Any = None

    # -- the bus's side (async, on the bus loop) -------------------------------------------------------------------

    def sequencer(self) -> RedisEventStore:
        return self

    async def prepare(self) -> None:
        import redis.asyncio

        self._async_client = redis.asyncio.Redis.from_url(self.url)
        self._script = self._async_client.register_script(SEQUENCE_AND_APPEND)

    async def sequence(self, batch: list[Event]) -> None:
        by_stream: defaultdict[str, list[Event]] = defaultdict(list)
        for event in batch:
            by_stream[event.stream].append(event)
        args: list[Any] = [settings.PIPELINE_RETENTION_PER_STREAM, self.prefix]
        for stream, events in by_stream.items():
            args.extend((stream, len(events)))
            args.extend(_encode(event) for event in events)
        firsts = await self._script(args=args)
        for first, events in zip(firsts, by_stream.values(), strict=True):
            for offset, event in enumerate(events):
                event.seq = int(first) + offset

    async def persist(self, batch: list[Event]) -> None:
        return None  # appended when sequenced

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def close(self) -> None:
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    # -- reads and retention (sync: views, consumers through a thread, the pruner) ---------------------------------

    def _client(self) -> Any:
        if self._sync_client is None:
            import redis

            self._sync_client = redis.Redis.from_url(self.url)
        return self._sync_client

    def _key(self, stream: str) -> str:
        return f"{self.prefix}events:{stream}"

    def _bounds(self, stream: str) -> tuple[int | None, int | None]:
        client = self._client()
        first = client.xrange(self._key(stream), "-", "+", count=1)
        last = client.xrevrange(self._key(stream), "+", "-", count=1)
        if not first:
            return None, None
        return _decode(stream, *first[0]).seq, _decode(stream, *last[0]).seq

    def last_seqs(self) -> dict[str, int]:
        client = self._client()
        names = sorted(name.decode() for name in client.smembers(f"{self.prefix}streams"))
        values = client.mget([f"{self.prefix}seq:{name}" for name in names]) if names else []
        return {name: int(value) for name, value in zip(names, values, strict=True) if value is not None}

    def last_seq(self, stream: str) -> int:
        value = self._client().get(f"{self.prefix}seq:{stream}")
        return int(value) if value is not None else 0

    def read(
        self, stream: str, *, after: int | None = None, since: datetime | None = None, limit: int = 100
    ) -> HistoryPage:
        limit = max(1, min(limit, MAX_READ))
        first_seq, last_seq = self._bounds(stream)
        start = f"({after}-0" if after is not None else "-"
        if since is not None:
            start = self._first_id_at_or_after(stream, since.timestamp(), start)
            if start is None:
                return HistoryPage([], _missed(after, first_seq), first_seq, last_seq)
        entries = self._client().xrange(self._key(stream), start, "+", count=limit)
        events = [_decode(stream, entry_id, fields) for entry_id, fields in entries]
        return HistoryPage(events, _missed(after, first_seq), first_seq, last_seq)

    def _first_id_at_or_after(self, stream: str, moment: float, start: str) -> str | None:
        # Entry ids are sequence numbers, not times: walk forward in chunks (bounded by the stream's MAXLEN).
        client = self._client()
        while True:
            chunk = client.xrange(self._key(stream), start, "+", count=500)
            if not chunk:
                return None
            for entry_id, fields in chunk:
                if _decode(stream, entry_id, fields).at >= moment:
                    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            last_id = chunk[-1][0]
            start = "(" + (last_id.decode() if isinstance(last_id, bytes) else last_id)

    async def prune_async(self) -> int:
        import asyncio

        return await asyncio.to_thread(self.prune)

    def prune(self, max_age_seconds: float | None = None, max_per_stream: int | None = None) -> int:
        """Trim by count (exactly) and by age (everything before the first entry young enough)."""
        max_age = settings.PIPELINE_RETENTION_SECONDS if max_age_seconds is None else max_age_seconds
        keep = settings.PIPELINE_RETENTION_PER_STREAM if max_per_stream is None else max_per_stream
        client = self._client()
        removed = 0
        for raw_name in client.smembers(f"{self.prefix}streams"):
            stream = raw_name.decode()
            removed += client.xtrim(self._key(stream), maxlen=keep, approximate=False)
            young = self._first_id_at_or_after(stream, time.time() - max_age, "-")
            if young is None:
                removed += client.xtrim(self._key(stream), maxlen=0, approximate=False)
            else:
                removed += client.xtrim(self._key(stream), minid=young, approximate=False)
        return removed


def event_store(*, worker: OrmWorker | None = None) -> DatabaseEventStore | RedisEventStore:
    """The store this configuration uses: Redis Streams with REDIS_URL, else the database (written in `worker`)."""
    return RedisEventStore() if settings.REDIS_URL else DatabaseEventStore(worker)
