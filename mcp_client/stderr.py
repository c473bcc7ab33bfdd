"""A stdio server's stderr, relayed line by line into our log: scrubbed of its secrets, named, and rate-limited.

Handing the child our own stderr would let it print anything (its env, a token it was given) straight into the
orchestrator's log, unattributed. Each stdio session instead gets a pipe; its lines are read on the fleet loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import IO

from .redaction import Redactor

logger = logging.getLogger("mcp_client.stderr")

MAX_LINES_PER_SECOND = 20
MAX_LINE_LENGTH = 500


async def _next_line(stream: asyncio.StreamReader) -> bytes:
    """The next line (b"" at the end). Of a line longer than the buffer only its beginning: the rest is skipped, not
    logged as lines of its own, since a piece that starts mid-line can start in the middle of a secret, where no
    redaction would recognise it (only the first MAX_LINE_LENGTH characters of a line are logged anyway)."""
    try:
        return await stream.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial  # the last line, without its newline
    except asyncio.LimitOverrunError as exc:
        head = await stream.read(exc.consumed)  # left in the buffer by readuntil
    while True:
        try:
            await stream.readuntil(b"\n")
            return head
        except asyncio.IncompleteReadError:
            return head
        except asyncio.LimitOverrunError as exc:
            await stream.read(exc.consumed)


class StderrRelay:
    def __init__(self, server: str, redact: Redactor) -> None:
        self._server = server
        self._redact = redact
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb", buffering=0)
        # What the child inherits as its stderr; ours is closed when the session ends.
        self.writer: IO[str] = os.fdopen(write_fd, "w")
        self._task: asyncio.Task[None] | None = None
        self.suppressed = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._relay(), name=f"mcp-stderr:{self._server}")

    async def _relay(self) -> None:
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader(limit=64 * 1024)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), self._reader)
        window_start, in_window = time.monotonic(), 0
        try:
            while True:
                raw = await _next_line(stream)
                if not raw:
                    return
                now = time.monotonic()
                if now - window_start >= 1.0:
                    if self.suppressed:
                        logger.warning(
                            "MCP server %r: %d stderr line(s) not logged (too many)", self._server, self.suppressed
                        )
                        self.suppressed = 0
                    window_start, in_window = now, 0
                in_window += 1
                if in_window > MAX_LINES_PER_SECOND:
                    self.suppressed += 1
                    continue
                line = raw.decode(errors="replace").rstrip()
                if line:
                    logger.info("MCP server %r stderr: %s", self._server, self._redact(line, MAX_LINE_LENGTH))
        finally:
            transport.close()

    async def aclose(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.close()
        task = self._task
        if task is not None and not task.done():
            # The child is gone, so the pipe ends once its last lines are read; don't wait for ever on a grandchild
            # that inherited the pipe.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 0.5)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(OSError):
            self._reader.close()
