"""Watching a session's HTTP traffic for what the SDK does not tell us.

- The status of a refused request: the Streamable HTTP client turns any 4xx/5xx into "Server returned an error
  response"; we keep the status so a 401 is reported as an authorization failure (see failures.py).
- A long-lived stream that breaks: the 2025 era's standalone GET stream and the 2026 era's notification stream are
  the only traffic an idle session has. When one of them fails, or a request cannot even connect, the server may be
  gone: `on_stream_dropped` lets the connection check at once instead of at the next request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import httpx2

from .failures import HttpObservations

logger = logging.getLogger(__name__)


def _is_event_stream(response: httpx2.Response) -> bool:
    return response.headers.get("content-type", "").lower().startswith("text/event-stream")


class _WatchedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, on_end: Callable[[str], None], long_lived: bool) -> None:
        self._inner = inner
        self._on_end = on_end
        self._long_lived = long_lived

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx2.TransportError as error:
            self._on_end(f"an event stream broke ({type(error).__name__})")
            raise
        if self._long_lived:
            self._on_end("the server closed its event stream")

    async def aclose(self) -> None:
        await self._inner.aclose()


class WatchingTransport(httpx2.AsyncBaseTransport):
    """Wraps the real transport of a session's HTTP client."""

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        observations: HttpObservations,
        on_stream_dropped: Callable[[str], None] | None,
    ) -> None:
        self._inner = inner
        self._observations = observations
        self._on_stream_dropped = on_stream_dropped

    def _dropped(self, why: str) -> None:
        if self._on_stream_dropped is not None:
            try:
                self._on_stream_dropped(why)
            except Exception:
                logger.exception("on_stream_dropped failed")

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except httpx2.ConnectError:
            self._dropped("a request could not connect")
            raise
        if response.status_code >= 400:
            self._observations.last_error_status = response.status_code
        if not _is_event_stream(response) or not isinstance(response.stream, httpx2.AsyncByteStream):
            return response
        # GET streams live as long as the session; a POST's stream ends with its answer (only a break counts).
        long_lived = request.method == "GET"
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_WatchedStream(response.stream, self._dropped, long_lived),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
