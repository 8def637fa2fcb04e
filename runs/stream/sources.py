"""Where the hub hears about new events: PostgreSQL LISTEN, or polling on SQLite.

- `PostgresListener`: one LISTEN connection per process on `arkloop_events` (payload
  `<run_id>:<seq>`, sent by `runs.notify` and delivered by PostgreSQL at commit), kept by
  `runs.listen.listen_forever` (the runner's loop too). Once LISTENing again after a drop it tells
  every stream to re-read from its cursor: whatever was committed while nobody listened is read
  from the log, not from notifications.
- `SqlitePoller`: SQLite has no NOTIFY; every POLL_SECONDS, and only while streams are subscribed,
  one query reads `last_seq` of all subscribed runs and announces the ones that moved.
"""
from __future__ import annotations

import asyncio
import logging

from django.db import connections

from runs.listen import listen_forever
from runs.notify import EVENTS_CHANNEL
from runs.stream.hub import Hub
from runs.stream.selectors import last_seqs, stream_db

log = logging.getLogger("arkloop.stream")

LISTEN_APPLICATION_NAME = "arkloop-stream-hub"
POLL_SECONDS = 0.05
IN_CHUNK = 500  # run ids per poll query (SQLite limits bound parameters)


class PostgresListener:
    """The hub's news on PostgreSQL: `runs.listen.listen_forever` on `arkloop_events`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def run(self) -> None:
        await listen_forever(channels=(EVENTS_CHANNEL,), application_name=LISTEN_APPLICATION_NAME,
                             on_notify=self._announce, on_connect=self.hub.resync_all)

    def _announce(self, channel: str, payload: str) -> None:
        run_id, _, seq = payload.rpartition(":")
        try:
            self.hub.announce(run_id, int(seq))
        except ValueError:
            log.warning("stream hub: ignoring malformed notification %r", payload)


class SqlitePoller:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.seen: dict[str, int] = {}

    async def run(self) -> None:
        while True:
            await self.hub.has_subscribers.wait()
            try:
                await self._poll_once()
            except Exception:
                log.exception("stream hub: polling failed")
            await asyncio.sleep(POLL_SECONDS)

    async def _poll_once(self) -> None:
        runs = self.hub.subscribed_runs()
        subscribed = set(runs)
        self.seen = {run_id: seq for run_id, seq in self.seen.items() if run_id in subscribed}
        for start in range(0, len(runs), IN_CHUNK):
            latest = await stream_db.read(last_seqs, run_ids=runs[start:start + IN_CHUNK])
            for run_id, seq in latest.items():
                if seq > self.seen.get(run_id, -1):
                    self.seen[run_id] = seq
                    self.hub.announce(run_id, seq)


def source_for_database(hub: Hub) -> PostgresListener | SqlitePoller:
    if connections["default"].vendor == "postgresql":
        return PostgresListener(hub)
    return SqlitePoller(hub)
