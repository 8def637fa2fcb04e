"""At most ARKLOOP_MAX_STREAMS_PER_PRINCIPAL open event streams per API key or access token.

A stream takes a slot in `open_run_events`, after its other checks and before its response
starts: one too many is 429 `streams.limit_exceeded`. The slot is held by the stream's body
(`SlotHeldStream`) and given back however the body ends — read to the end, closed by the lean
ASGI path or by Django's handler, or never started at all and garbage-collected — so both
serving paths count the same streams, once.

The count is per process (the hub is too): with several Daphne processes behind a balancer, a
principal may hold up to processes × the cap, unless the balancer routes each Authorization
header to one process (docs/streaming.md).
"""
from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from arkloop.errors import TooManyRequests

RETRY_AFTER_SECONDS = 5


class TooManyStreams(TooManyRequests):
    code = "streams.limit_exceeded"
    message = "too many open event streams for this API key or access token"


class StreamSlots:
    """Open streams per credential in this process (thread-safe: Django may close from a thread)."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, credential: str) -> StreamSlot:
        limit = settings.ARKLOOP_MAX_STREAMS_PER_PRINCIPAL
        with self._lock:
            if limit and self._open[credential] >= limit:
                raise TooManyStreams(details={"max_streams": limit},
                                     headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            self._open[credential] += 1
        return StreamSlot(self, credential)

    def release(self, credential: str) -> None:
        with self._lock:
            self._open[credential] -= 1
            if self._open[credential] <= 0:
                del self._open[credential]

    def open_streams(self, credential: str) -> int:
        with self._lock:
            return self._open[credential]


class StreamSlot:
    """One held slot; `release` gives it back once, however often it is called."""

    def __init__(self, slots: StreamSlots, credential: str) -> None:
        self._release = weakref.finalize(self, slots.release, credential)

    def release(self) -> None:
        self._release()


class SlotHeldStream:
    """A stream body that holds its slot until it is closed (aclose, Django's close, or collected).
    `direct`: the body's `runs.stream.follow.DirectWrites`, for the serving path to fill in."""

    def __init__(self, body: AsyncIterator[bytes], slot: StreamSlot, *, direct: Any = None) -> None:
        self._body = body
        self._slot = slot
        self.direct = direct

    def __aiter__(self) -> SlotHeldStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._body.__anext__()
        except StopAsyncIteration:
            self._slot.release()
            raise

    async def aclose(self) -> None:
        try:
            await self._body.aclose()
        finally:
            self._slot.release()

    def close(self) -> None:
        """Django's StreamingHttpResponse calls this when the response is closed."""
        self._slot.release()


stream_slots = StreamSlots()
