"""One SSE stream: replay the log after a cursor, then follow the hub, until the terminal event.

The order that makes "no gap, no duplicate" hold while events are being appended:
1. subscribe to the hub (from now on every committed event is announced to this stream);
2. replay from the database in batches after the cursor;
3. follow the queue: drop frames at or below the cursor, send the next one, and on a gap or a
   RESYNC read the missing events from the database.
A cursor at or past the last event of a finished run ends the stream at once; on an active run
the stream waits for the next event, and ends when the run does.
An event committed during the replay is thus either read by the replay or announced afterwards
(or both, and then dropped once), never neither.

While the stream is live (step 3 with an empty queue) and its server allows it
(`DirectWrites.writer`, runs/stream/transport.py), the hub writes each next frame to the client
itself (`Subscription.live`), the terminal one too; anything out of the ordinary — a gap, a
RESYNC — and the end of the response still come through the queue to this task.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from django.conf import settings

from arkloop.metrics import SSE_EVENTS_SENT, SSE_STREAMS_OPEN
from runs.stream.hub import RESYNC, Subscription, get_hub
from runs.stream.selectors import BATCH_SIZE, events_after, run_is_finished, stream_db
from runs.stream.sse import PING, Frame
from runs.stream.transport import ChunkWriter


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


class DirectWrites:
    """Set by the serving path once the response head is written: how the hub may write this
    stream's live frames (None: every frame goes through the stream's task and `send`)."""

    writer: ChunkWriter | None = None


async def event_stream(*, run_id: str, after_seq: int, follow: bool, run_finished: bool,
                       direct: DirectWrites) -> AsyncIterator[bytes]:
    """The response body of GET /v1/runs/{run_id}/events (see module doc)."""
    cursor = _Cursor(run_id=run_id, seq=after_seq)
    SSE_STREAMS_OPEN.inc()
    try:
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
            async for chunk in _follow(cursor, subscription, direct.writer):
                yield chunk
        finally:
            hub.unsubscribe(subscription)
    finally:
        SSE_STREAMS_OPEN.dec()


async def _catch_up(cursor: _Cursor) -> AsyncIterator[bytes]:
    """Everything in the log after the cursor, one chunk per batch, up to the terminal event."""
    while not cursor.finished:
        frames = await stream_db.read(events_after, run_id=cursor.run_id, after_seq=cursor.seq)
        fresh = [frame for frame in frames if frame.seq > cursor.seq]
        if fresh:
            SSE_EVENTS_SENT.inc(len(fresh))
            yield b"".join(cursor.take(frame) for frame in fresh)
        if len(frames) < BATCH_SIZE:
            return


class _PingDue:
    def __repr__(self) -> str:
        return "PING_DUE"


PING_DUE = _PingDue()


class _Heartbeat:
    """Puts PING_DUE in the stream's queue once nothing was sent for `interval` seconds.

    One timer per interval, not one per frame: a send only records the time. (A timeout around
    each queue read cost 2/3 of a delivery's CPU when one event fans out to 1,000 streams.)
    """

    def __init__(self, queue: asyncio.Queue, interval: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue = queue
        self.interval = interval
        self.last_sent = self.loop.time()
        self.timer = self.loop.call_at(self.last_sent + interval, self._check)

    def sent(self) -> None:
        self.last_sent = self.loop.time()

    def _check(self) -> None:
        due = self.last_sent + self.interval
        if self.loop.time() < due:
            self.timer = self.loop.call_at(due, self._check)
            return
        try:
            self.queue.put_nowait(PING_DUE)
        except asyncio.QueueFull:
            pass  # frames are waiting: sending them is the sign of life
        self.timer = self.loop.call_at(self.loop.time() + self.interval, self._check)

    def stop(self) -> None:
        self.timer.cancel()


async def _resync(cursor: _Cursor) -> AsyncIterator[bytes]:
    """Re-read the log after the cursor; the stream ends if the run had already finished.

    The status is read first: a finished run's events are all committed, so the catch-up reads
    its terminal event — or, with a cursor at or past it, nothing, and there is nothing to wait for.
    """
    finished = await stream_db.read(run_is_finished, run_id=cursor.run_id)
    async for chunk in _catch_up(cursor):
        yield chunk
    cursor.finished = cursor.finished or finished


def _live(cursor: _Cursor, subscription: Subscription, heartbeat: _Heartbeat,
          write: ChunkWriter) -> Callable[[Frame, bytes], bool | None]:
    """What the hub calls with each frame (and its chunk) while this stream is live: the next frame is written at
    once (True; the hub counts it), one sent already is dropped (False), anything else is left to
    the task (None). After the terminal frame the frame is also queued, which wakes the task to
    end the response (it was sent: the task drops it)."""

    def live(frame: Frame, chunk: bytes) -> bool | None:
        if frame.seq <= cursor.seq and not frame.terminal:
            return False  # read by the replay, then announced
        if frame.seq != cursor.seq + 1 or not write(chunk, len(frame.body)):
            return None
        cursor.take(frame)
        heartbeat.sent()
        if frame.terminal:
            subscription.live = None
            subscription.queue.put_nowait(frame)
        return True

    return live


async def _follow(cursor: _Cursor, subscription: Subscription, writer: ChunkWriter | None) -> AsyncIterator[bytes]:
    """Live frames from the hub, with a ping whenever nothing was sent for a heartbeat.

    A cursor may be past the run's last event (a client's own `after_seq`): frames at or below
    it are not sent, and a terminal one among them ends the stream, as nothing can follow it.
    Each time the queue is empty — everything this task yielded has been sent, since the server
    sent it before resuming this generator — the hub may write frames directly again.
    """
    heartbeat = _Heartbeat(subscription.queue, settings.ARKLOOP_SSE_HEARTBEAT_SECONDS)
    live = _live(cursor, subscription, heartbeat, writer) if writer is not None else None
    try:
        while not cursor.finished:
            if live is not None and subscription.queue.empty():
                subscription.live = live
            item = await subscription.queue.get()
            if item is PING_DUE:
                yield PING
            elif item is RESYNC or item.seq > cursor.seq + 1:
                async for chunk in (_resync(cursor) if item is RESYNC else _catch_up(cursor)):
                    yield chunk
                    heartbeat.sent()
                continue
            elif item.seq == cursor.seq + 1:
                SSE_EVENTS_SENT.inc()  # the one per-event cost metrics add to fan-out (~0.3 µs)
                yield cursor.take(item)
            else:
                cursor.finished = item.terminal  # already sent (read by the replay), or below the cursor
                continue
            heartbeat.sent()
    finally:
        subscription.live = None
        heartbeat.stop()
