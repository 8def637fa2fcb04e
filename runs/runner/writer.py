"""Event writing that scales: one group-commit writer per runner process, merging deltas.

Runs hand their events to `EventWriter.append`; a single writer task takes everything queued,
writes it with `runs.events.event_append_batch` (one transaction, a few statements for any
number of runs), and starts again with what arrived meanwhile. So an idle runner writes each
event at once (lowest latency), and a busy one commits many runs' events together.

Merging: while a `message.delta` waits in the queue, a further delta of the same run, attempt
and channel is appended to it instead of becoming a new row — only if the queued one is at
most `MERGE_WINDOW` (50 ms) old and both are mergeable. A delta is never held back to wait for
merging; it only merges with one that is already waiting. Text is concatenated, never
reordered, so a run's visible deltas still concatenate to exactly its reply. The stub's deltas
are unmergeable (their count is its contract).

Everything is keyed by (run, attempt): the events of an attempt that lost its lease are never
written under the next attempt. What the writer reports for a run, with the attempt:
- `on_rejected`: its events were refused (finished, or its lease was taken over) → drop the run.
- `on_unstorable`: its events cannot be stored at all (the database refuses this run's data):
  a failed batch is written again run by run, so only the guilty run is reported → fail it.
- `on_error`: the database itself failed (it is down, or the connection broke while the batch
  committed, so it may or may not be written, and fire-and-forget deltas may be lost) → restart
  the run from its log (bounded by the restart limit; see docs/runner.md).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from arkloop.db_threads import DbThreads
from runs.events import BatchNotWritten, EventRejected, event_append_batch

log = logging.getLogger("runs.runner")
MERGE_WINDOW = 0.05
Key = tuple[str, int]  # (run_id, attempt)


class EventsUnstorable(Exception):
    """The database refused this run's events even when written on their own."""


@dataclass
class _Pending:
    run_id: str
    attempt: int
    type: str
    data: dict[str, Any]
    mergeable: bool
    created: float = field(default_factory=time.monotonic)
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    @property
    def key(self) -> Key:
        return (self.run_id, self.attempt)


def _database_ok() -> bool:
    """One trivial query: can this connection still talk to the database?"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return True


class EventWriter:
    def __init__(self, db: DbThreads, *, on_rejected: Callable[[str, str, int], None] | None = None,
                 on_error: Callable[[str, int], None] | None = None,
                 on_unstorable: Callable[[str, int], None] | None = None) -> None:
        self.db = db
        self.on_rejected = on_rejected or (lambda run_id, reason, attempt: None)
        self.on_error = on_error or (lambda run_id, attempt: None)
        self.on_unstorable = on_unstorable or (lambda run_id, attempt: None)
        self._queue: list[_Pending] = []
        self._tail: dict[Key, _Pending] = {}  # each attempt's last queued event: the only one a delta may join
        self._unsettled: dict[Key, list[asyncio.Future]] = {}
        self._ready = asyncio.Event()
        self.batches = 0
        self.events = 0
        # Seconds from an event's creation to its commit (recent ones), for `make bench`.
        self.lags: deque[float] = deque(maxlen=200_000)

    def append(self, run_id: str, attempt: int, type: str, data: dict[str, Any], *,
               mergeable: bool = False) -> asyncio.Future:
        """Queue one event (fire and forget); the future is done when it is committed or refused."""
        key = (run_id, attempt)
        last = self._tail.get(key)
        if mergeable and last is not None and self._merges(last, type, data):
            last.data["content"] += data["content"]
            return last.future
        item = _Pending(run_id, attempt, type, dict(data), mergeable)
        self._queue.append(item)
        self._tail[key] = item
        self._unsettled.setdefault(key, []).append(item.future)
        self._ready.set()
        return item.future

    async def write(self, run_id: str, attempt: int, type: str, data: dict[str, Any]) -> None:
        """Queue one event and wait until it is committed; raises EventRejected if it was refused."""
        # shield: cancelling the waiting run must not cancel the write other waiters rely on.
        await asyncio.shield(self.append(run_id, attempt, type, data))

    async def flush(self, run_id: str, attempt: int) -> None:
        """Wait until every queued event of this attempt is committed; raises what a refused one got."""
        futures = list(self._unsettled.get((run_id, attempt), []))
        if not futures:
            return
        await asyncio.wait(futures)  # unlike gather, a cancelled flush leaves the writes alone
        for future in futures:
            if not future.cancelled() and future.exception() is not None:
                raise future.exception()

    def forget(self, run_id: str, attempt: int) -> None:
        self._unsettled.pop((run_id, attempt), None)

    async def run_forever(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._queue, self._tail = self._queue, [], {}
            if batch:
                await self._write(batch)

    @staticmethod
    def _merges(item: _Pending, type: str, data: dict[str, Any]) -> bool:
        return (item.mergeable and item.type == type == "message.delta"
                and item.data.get("channel") == data.get("channel")
                and time.monotonic() - item.created <= MERGE_WINDOW)

    # --- writing and settling ---------------------------------------------------------------------

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            refused = await self.db.call(event_append_batch, _items(batch))
        except BatchNotWritten as exc:  # nothing was written: find out which run it was
            log.warning("writing %d events failed (%s); writing them run by run", len(batch), exc)
            await self._write_each(batch)
        except Exception as exc:  # failed at commit (or before reaching the database): outcome unknown
            log.exception("writing %d events failed", len(batch))
            for items in _by_key(batch).values():
                self._settle(items, error=exc)
        else:
            for key, items in _by_key(batch).items():
                self._settle(items, refused=refused.get(key))
        self.batches += 1
        self.events += len(batch)
        committed = time.monotonic()
        self.lags.extend(committed - item.created for item in batch)

    async def _write_each(self, batch: list[_Pending]) -> None:
        """Write each (run, attempt) of a failed batch on its own: a run the database refuses while
        it answers a trivial query is unstorable; the others are written as if nothing happened."""
        database_down: Exception | None = None
        for key, items in _by_key(batch).items():
            if database_down is not None:
                self._settle(items, error=database_down)
                continue
            try:
                refused = await self.db.call(event_append_batch, _items(items))
            except BatchNotWritten as exc:
                if await self._database_answers():
                    log.error("run %s: its events cannot be stored (%s)", key[0], exc)
                    self._settle(items, unstorable=EventsUnstorable(str(exc)))
                else:
                    database_down = exc
                    self._settle(items, error=exc)
            except Exception as exc:  # not even a transaction: the database is away, stop trying
                database_down = exc
                self._settle(items, error=exc)
            else:
                self._settle(items, refused=refused.get(key))

    async def _database_answers(self) -> bool:
        try:
            return await self.db.call(_database_ok)
        except Exception:
            return False

    def _settle(self, items: list[_Pending], *, refused: str | None = None, error: Exception | None = None,
                unstorable: EventsUnstorable | None = None) -> None:
        """Complete the futures of one (run, attempt)'s events, then tell the runner what happened."""
        run_id, attempt = items[0].key
        failure = error or unstorable or (EventRejected(refused) if refused else None)
        futures = self._unsettled.get((run_id, attempt), [])
        for item in items:
            if item.future in futures:
                futures.remove(item.future)
            if item.future.done():
                continue
            if failure is None:
                item.future.set_result(None)
            else:
                item.future.set_exception(failure)
                item.future.exception()  # retrieved: a fire-and-forget delta must not warn at exit
        if refused:
            self.on_rejected(run_id, refused, attempt)
        elif unstorable is not None:
            self.on_unstorable(run_id, attempt)
        elif error is not None:
            self.on_error(run_id, attempt)


def _items(batch: list[_Pending]) -> list[tuple[str, int, str, dict[str, Any]]]:
    return [(p.run_id, p.attempt, p.type, p.data) for p in batch]


def _by_key(batch: list[_Pending]) -> dict[Key, list[_Pending]]:
    """The batch's events per (run, attempt), each group in queue order."""
    groups: dict[Key, list[_Pending]] = {}
    for item in batch:
        groups.setdefault(item.key, []).append(item)
    return groups
