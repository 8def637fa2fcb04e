"""One SSE stream: replay the log after a cursor, then follow the hub, until the terminal event.

The order that makes "no gap, no duplicate" hold while events are being appended:
1. subscribe to the hub (from now on every committed event is announced to this stream);
2. replay from the database in batches after the cursor;
3. follow the queue: drop frames at or below the cursor, send the next one, and on a gap or a
   RESYNC read the missing events from the database.
An event committed during the replay is thus either read by the replay or announced afterwards
(or both, and then dropped once), never neither.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.conf import settings

from runs.stream.db import db_call
from runs.stream.hub import RESYNC, Subscription, get_hub
from runs.stream.selectors import BATCH_SIZE, events_after
from runs.stream.sse import PING, Frame


@dataclass
class _Cursor:
    run_id: str
    seq: int
    finished: bool = False

    def take(self, frame: Frame) -> bytes:
        """Advance past `frame` (the next seq); returns its bytes."""
        self.seq = frame.seq
        self.finished = frame.terminal
        return frame.body


async def event_stream(*, run_id: str, after_seq: int, follow: bool, run_finished: bool) -> AsyncIterator[bytes]:
    """The response body of GET /v1/runs/{run_id}/events (see module doc)."""
    cursor = _Cursor(run_id=run_id, seq=after_seq)
    # An empty first chunk makes the server send the headers now, before any event exists.
    yield b""
    if not follow or run_finished:
        async for chunk in _catch_up(cursor):
            yield chunk
        return
    hub = get_hub()
    subscription = hub.subscribe(run_id)
    try:
        async for chunk in _catch_up(cursor):
            yield chunk
        async for chunk in _follow(cursor, subscription):
            yield chunk
    finally:
        hub.unsubscribe(subscription)


async def _catch_up(cursor: _Cursor) -> AsyncIterator[bytes]:
    """Everything in the log after the cursor, one chunk per batch, up to the terminal event."""
    while not cursor.finished:
        frames = await db_call(events_after, run_id=cursor.run_id, after_seq=cursor.seq)
        if frames:
            yield b"".join(cursor.take(frame) for frame in frames if frame.seq > cursor.seq)
        if len(frames) < BATCH_SIZE:
            return


async def _follow(cursor: _Cursor, subscription: Subscription) -> AsyncIterator[bytes]:
    """Live frames from the hub, with a ping whenever nothing was sent for a heartbeat."""
    heartbeat = settings.ARKLOOP_SSE_HEARTBEAT_SECONDS
    ping_at = time.monotonic() + heartbeat
    while not cursor.finished:
        try:
            async with asyncio.timeout(max(0.0, ping_at - time.monotonic())):
                item = await subscription.queue.get()
        except TimeoutError:
            yield PING
            ping_at = time.monotonic() + heartbeat
            continue
        if item is RESYNC or item.seq > cursor.seq + 1:
            async for chunk in _catch_up(cursor):
                yield chunk
                ping_at = time.monotonic() + heartbeat
        elif item.seq == cursor.seq + 1:
            yield cursor.take(item)
            ping_at = time.monotonic() + heartbeat
