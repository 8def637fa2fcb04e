"""Event writing that scales: one group-commit writer per runner process, merging deltas.

Runs hand their events to `EventWriter.append`; a single writer task takes everything queued,
writes it with `runs.events.event_append_batch` (one transaction, a few statements for any
number of runs), and starts again with what arrived meanwhile. So an idle runner writes each
event at once (lowest latency), and a busy one commits many runs' events together.

Merging: while a `message.delta` waits in the queue, a further delta of the same run and
channel is appended to it instead of becoming a new row — only if the queued one is at most
`MERGE_WINDOW` (50 ms) old and both are mergeable. A delta is never held back to wait for
merging; it only merges with one that is already waiting. Text is concatenated, never reordered,
so a run's visible deltas still concatenate to exactly its reply. The stub's deltas are
unmergeable (their count is its contract).

A run whose events are refused (finished, or its lease was taken over) is reported to
`on_rejected`, so the runner abandons it. A batch that fails (the connection broke, a deadlock)
may or may not have committed, and its fire-and-forget deltas are gone: every run in it is
reported to `on_error`, so the runner restarts it from its log instead of going on with output
the log may lack (found by tests/soak).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runs.events import EventRejected, event_append_batch
from runs.runner.db import Db

log = logging.getLogger("runs.runner")
MERGE_WINDOW = 0.05


@dataclass
class _Pending:
    run_id: str
    attempt: int
    type: str
    data: dict[str, Any]
    mergeable: bool
    created: float = field(default_factory=time.monotonic)
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class EventWriter:
    def __init__(self, db: Db, *, on_rejected: Callable[[str, str, int], None] | None = None,
                 on_error: Callable[[str, int], None] | None = None) -> None:
        self.db = db
        self.on_rejected = on_rejected or (lambda run_id, reason, attempt: None)
        self.on_error = on_error or (lambda run_id, attempt: None)
        self._queue: list[_Pending] = []
        self._tail: dict[str, _Pending] = {}  # each run's last queued event: the only one a delta may join
        self._unsettled: dict[str, list[asyncio.Future]] = {}
        self._ready = asyncio.Event()
        self.batches = 0
        self.events = 0
        # Seconds from an event's creation to its commit (recent ones), for `make bench`.
        self.lags: deque[float] = deque(maxlen=200_000)

    def append(self, run_id: str, attempt: int, type: str, data: dict[str, Any], *,
               mergeable: bool = False) -> asyncio.Future:
        """Queue one event (fire and forget); the future is done when it is committed or refused."""
        last = self._tail.get(run_id)
        if mergeable and last is not None and last.attempt == attempt and self._merges(last, type, data):
            last.data["content"] += data["content"]
            return last.future
        item = _Pending(run_id, attempt, type, dict(data), mergeable)
        self._queue.append(item)
        self._tail[run_id] = item
        self._unsettled.setdefault(run_id, []).append(item.future)
        self._ready.set()
        return item.future

    async def write(self, run_id: str, attempt: int, type: str, data: dict[str, Any]) -> None:
        """Queue one event and wait until it is committed; raises EventRejected if it was refused."""
        # shield: cancelling the waiting run must not cancel the write other waiters rely on.
        await asyncio.shield(self.append(run_id, attempt, type, data))

    async def flush(self, run_id: str) -> None:
        """Wait until every queued event of `run_id` is committed; raises EventRejected if one was refused."""
        futures = list(self._unsettled.get(run_id, []))
        if not futures:
            return
        await asyncio.wait(futures)  # unlike gather, a cancelled flush leaves the writes alone
        for future in futures:
            if not future.cancelled() and future.exception() is not None:
                raise future.exception()

    def forget(self, run_id: str) -> None:
        self._unsettled.pop(run_id, None)

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

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            refused = await self.db.call(event_append_batch,
                                         [(p.run_id, p.attempt, p.type, p.data) for p in batch])
        except Exception as exc:  # the database is down: fail these writes, keep the writer alive
            log.exception("writing %d events failed", len(batch))
            refused, error = {}, exc
        else:
            error = None
        self.batches += 1
        self.events += len(batch)
        committed = time.monotonic()
        self.lags.extend(committed - item.created for item in batch)
        self._settle(batch, refused, error)

    def _settle(self, batch: list[_Pending], refused: dict[str, str], error: Exception | None) -> None:
        for item in batch:
            futures = self._unsettled.get(item.run_id, [])
            if item.future in futures:
                futures.remove(item.future)
            if item.future.done():
                continue
            if error is not None:
                item.future.set_exception(error)
            elif item.run_id in refused:
                item.future.set_exception(EventRejected(refused[item.run_id]))
            else:
                item.future.set_result(None)
            if item.future.done() and item.future.exception() is not None:
                item.future.exception()  # retrieved: a fire-and-forget delta must not warn at exit
        attempts = {item.run_id: item.attempt for item in batch}
        for run_id, reason in refused.items():
            self.on_rejected(run_id, reason, attempts[run_id])
        if error is not None:
            for run_id, attempt in attempts.items():
                self.on_error(run_id, attempt)
