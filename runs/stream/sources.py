"""Where the hub hears about new events: PostgreSQL LISTEN, or polling on SQLite.

- `PostgresListener`: one psycopg AsyncConnection per process LISTENs on `arkloop_events`
  (payload `<run_id>:<seq>`, sent by `runs.notify` and delivered by PostgreSQL at commit). Its
  URL is ARKLOOP_LISTEN_DATABASE_URL when set (so it can bypass a transaction-mode pooler, which
  cannot carry LISTEN), else the default database. When the connection drops it reconnects with
  backoff, and once LISTENing again tells every stream to re-read from its cursor: whatever was
  committed while nobody listened is read from the log, not from notifications.
- `SqlitePoller`: SQLite has no NOTIFY; every POLL_SECONDS, and only while streams are subscribed,
  one query reads `last_seq` of all subscribed runs and announces the ones that moved.
"""
from __future__ import annotations

import asyncio
import logging

from django.db import connections

from runs.notify import EVENTS_CHANNEL, listen_conninfo
from runs.stream.db import db_call
from runs.stream.hub import Hub
from runs.stream.selectors import last_seqs

log = logging.getLogger("arkloop.stream")

LISTEN_APPLICATION_NAME = "arkloop-stream-hub"
POLL_SECONDS = 0.05
MIN_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0
IN_CHUNK = 500  # run ids per poll query (SQLite limits bound parameters)


class PostgresListener:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.backoff = MIN_BACKOFF_SECONDS

    async def run(self) -> None:
        while True:
            try:
                await self._listen()
            except Exception as exc:  # OperationalError and friends: the connection is gone
                log.warning("stream hub: LISTEN connection lost (%s); reconnecting in %.1fs", exc, self.backoff)
            await asyncio.sleep(self.backoff)
            self.backoff = min(self.backoff * 2, MAX_BACKOFF_SECONDS)

    async def _listen(self) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(
                listen_conninfo(application_name=LISTEN_APPLICATION_NAME), autocommit=True) as conn:
            await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            log.info("stream hub: listening on %s", EVENTS_CHANNEL)
            self.backoff = MIN_BACKOFF_SECONDS
            self.hub.resync_all()
            async for notification in conn.notifies():
                self._announce(notification.payload)

    def _announce(self, payload: str) -> None:
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
            latest = await db_call(last_seqs, run_ids=runs[start:start + IN_CHUNK])
            for run_id, seq in latest.items():
                if seq > self.seen.get(run_id, -1):
                    self.seen[run_id] = seq
                    self.hub.announce(run_id, seq)


def source_for_database(hub: Hub) -> PostgresListener | SqlitePoller:
    if connections["default"].vendor == "postgresql":
        return PostgresListener(hub)
    return SqlitePoller(hub)
