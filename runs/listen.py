"""One reconnecting PostgreSQL LISTEN loop, for the runner's wake-ups and the stream hub's news.

`listen_forever` keeps one psycopg `AsyncConnection` LISTENing on the given channels (waiting
for notifications costs no thread) and hands each notification's channel and payload to
`on_notify`. When the connection drops it reconnects with backoff (MIN_BACKOFF_SECONDS doubling
up to MAX_BACKOFF_SECONDS) and, once LISTENing again, calls `on_connect`: whatever was
committed while nobody listened must be found another way (the runner re-checks for work, the
hub makes every stream re-read the log from its cursor), not from notifications.

The connection goes to ARKLOOP_LISTEN_DATABASE_URL when set (`runs.notify.listen_conninfo`),
named `application_name` so operators (and the fault tests) find it in pg_stat_activity.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from runs.notify import listen_conninfo

log = logging.getLogger("runs.listen")

MIN_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0


async def listen_forever(*, channels: Iterable[str], application_name: str,
                         on_notify: Callable[[str, str], None], on_connect: Callable[[], None]) -> None:
    """Deliver `(channel, payload)` of every notification until cancelled."""
    import psycopg

    channels = tuple(channels)
    backoff = MIN_BACKOFF_SECONDS
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                    listen_conninfo(application_name=application_name), autocommit=True) as conn:
                for channel in channels:
                    await conn.execute(f"LISTEN {channel}")
                log.info("%s: listening on %s", application_name, ", ".join(channels))
                backoff = MIN_BACKOFF_SECONDS
                on_connect()
                async for notification in conn.notifies():
                    on_notify(notification.channel, notification.payload)
        except Exception as exc:  # psycopg.OperationalError and friends: the connection is gone
            log.warning("%s: LISTEN connection lost (%s); reconnecting in %.1fs", application_name, exc, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
