"""The per-process notification hub: one source of "run R has new events" for every stream.

Streams `subscribe(run_id)` and read their `Subscription.queue`. The hub learns about new events
from a source (`runs.stream.sources`: one PostgreSQL LISTEN connection, or a poller on SQLite),
reads each new event from the database ONCE per run, and puts the same rendered `Frame` in the
queue of every subscriber of that run. It may also put `RESYNC` in a queue, which means "you may
have missed something: re-read the log after your cursor" (after the LISTEN connection was
re-established, after a failed read, or when the queue overflowed).

A live stream under Daphne takes its frames without its queue: the hub writes them to the
client itself (`Subscription.live`, runs/stream/transport.py), so one event reaches 1,000
followers without waking 1,000 tasks.

Queues are bounded. A subscriber that falls `QUEUE_SIZE` frames behind has its queue emptied and
replaced by a single RESYNC: memory stays bounded and the stream catches up from the database at
its own pace instead of being closed.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from arkloop.metrics import SSE_EVENTS_DIRECT, SSE_EVENTS_SENT
from runs.stream.selectors import events_after, stream_db
from runs.stream.sse import Frame, http_chunk

log = logging.getLogger("arkloop.stream")

QUEUE_SIZE = 1000


class _Resync:
    def __repr__(self) -> str:
        return "RESYNC"


RESYNC: Final = _Resync()


@dataclass(eq=False)
class Subscription:
    """One stream's interest in one run.

    `live`, when the stream sets it (it is caught up and its queue is empty), takes a frame and
    its HTTP/1.1 chunk (framed once by the hub for every follower) and returns True (written to
    the client at once), False (dropped: the stream sent it already) or None (not taken). From
    the first item it does not take, `live` is cleared and items queue until the stream's task
    has sent them and sets it again: frames never overtake each other.
    """

    run_id: str
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE))
    live: Callable[[Frame, bytes], bool | None] | None = None

    def deliver(self, item: Frame | _Resync, chunk: bytes | None = None) -> bool:
        """Hand over one item; True if it was written to the client already. `chunk`: the frame
        as an HTTP/1.1 chunk, which `live` may write (without one the item is queued)."""
        if self.live is not None:
            try:
                taken = self.live(item, chunk) if chunk is not None else None
                if taken is not None:
                    return taken
            except Exception:
                log.exception("stream hub: a direct write failed; the stream's task takes over")
            self.live = None
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
        return False


@dataclass(eq=False)
class _RunChannel:
    """The subscribers of one run and how far the hub has read its log for them."""

    subscribers: set[Subscription] = field(default_factory=set)
    fetched: int | None = None  # highest seq already fanned out
    wanted: int = 0  # highest seq the source announced
    reader: asyncio.Task | None = None


@dataclass(frozen=True)
class HubStats:
    subscribers: int
    runs: int
    readers: int
    source_running: bool


class Hub:
    """Fans out committed events to the streams of one process (one hub per event loop)."""

    def __init__(self) -> None:
        self._runs: dict[str, _RunChannel] = {}
        self._source: asyncio.Task | None = None
        self.has_subscribers = asyncio.Event()

    def subscribe(self, run_id: str) -> Subscription:
        """Register a stream; starts the source on first use. Subscribe BEFORE replaying."""
        subscription = Subscription(run_id=run_id)
        self._runs.setdefault(run_id, _RunChannel()).subscribers.add(subscription)
        self.has_subscribers.set()
        self._ensure_source()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        channel = self._runs.get(subscription.run_id)
        if channel is None:
            return
        channel.subscribers.discard(subscription)
        if not channel.subscribers:
            del self._runs[subscription.run_id]
            if channel.reader is not None:
                channel.reader.cancel()
        if not self._runs:
            self.has_subscribers.clear()

    def subscribed_runs(self) -> list[str]:
        return list(self._runs)

    def stats(self) -> HubStats:
        return HubStats(subscribers=sum(len(c.subscribers) for c in self._runs.values()),
                        runs=len(self._runs),
                        readers=sum(c.reader is not None for c in self._runs.values()),
                        source_running=self._source is not None and not self._source.done())

    def announce(self, run_id: str, seq: int) -> None:
        """The source saw that run `run_id` has events up to `seq` committed."""
        channel = self._runs.get(run_id)
        if channel is None:
            return
        channel.wanted = max(channel.wanted, seq)
        if channel.fetched is None:
            # First news since the channel opened: its subscribers replay everything older.
            channel.fetched = seq - 1
        if channel.reader is None and channel.wanted > channel.fetched:
            channel.reader = asyncio.create_task(self._read_and_fan_out(run_id, channel))

    def resync_all(self) -> None:
        """Every stream re-reads from its cursor (notifications may have been missed)."""
        for channel in self._runs.values():
            channel.fetched = None
            self._deliver(channel, RESYNC)

    async def _read_and_fan_out(self, run_id: str, channel: _RunChannel) -> None:
        try:
            while channel.subscribers and channel.fetched is not None and channel.wanted > channel.fetched:
                frames = await stream_db.read(events_after, run_id=run_id, after_seq=channel.fetched,
                                              upto=channel.wanted)
                if not frames:
                    break  # not readable yet; the next announcement or a gap check catches up
                for frame in frames:
                    self._deliver(channel, frame)
                channel.fetched = frames[-1].seq
        except Exception:
            log.exception("stream hub: reading new events of run %s failed", run_id)
            channel.fetched = None
            self._deliver(channel, RESYNC)
        finally:
            channel.reader = None

    @staticmethod
    def _deliver(channel: _RunChannel, item: Frame | _Resync) -> None:
        # Framed once per event, for every stream it is written to directly (a replay needs none).
        chunk = http_chunk(item.body) if isinstance(item, Frame) else None
        written = 0
        for subscription in list(channel.subscribers):  # a copy: nothing may change the set mid-way
            written += subscription.deliver(item, chunk)
        if written:  # the streams' tasks count what they send themselves
            SSE_EVENTS_SENT.inc(written)
            SSE_EVENTS_DIRECT.inc(written)

    def _ensure_source(self) -> None:
        if self._source is None or self._source.done():
            from runs.stream.sources import source_for_database

            self._source = asyncio.create_task(source_for_database(self).run(), name="arkloop-stream-hub")


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """The hub of the running event loop (Daphne has one loop per process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub
