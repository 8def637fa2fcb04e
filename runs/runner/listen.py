"""Wake-ups on PostgreSQL: one LISTEN connection per runner process on the `arkloop_work` channel
(and `arkloop_webhooks`, for the runner's webhook sender).

Payloads are `<run_id>:<event type>` (run.started, run.cancel_requested, run.input_provided,
run.cancelled), sent by `runs.notify` when the event commits. The connection is psycopg's
async one, so waiting for notifications costs no thread. On a broken connection it reconnects
with a short backoff and calls `on_connect` again, so the runner re-checks for work it missed.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from runs.notify import WEBHOOKS_CHANNEL, WORK_CHANNEL, listen_conninfo

log = logging.getLogger("runs.runner")
# How operators (and the fault tests) find this connection in pg_stat_activity.
LISTEN_APPLICATION_NAME = "arkloop-runner-listen"


async def listen_work(*, on_notify: Callable[[str, str], None], on_connect: Callable[[], None],
                      on_webhooks: Callable[[], None] | None = None) -> None:
    """Deliver `(run_id, type)` for every work notification until cancelled; with `on_webhooks`,
    also listen for due webhook deliveries on the same connection."""
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                listen_conninfo(application_name=LISTEN_APPLICATION_NAME), autocommit=True)
            async with conn:
                await conn.execute(f"LISTEN {WORK_CHANNEL}")
                if on_webhooks is not None:
                    await conn.execute(f"LISTEN {WEBHOOKS_CHANNEL}")
                on_connect()
                async for notification in conn.notifies():
                    if notification.channel == WEBHOOKS_CHANNEL:
                        on_webhooks()
                        continue
                    run_id, _, event_type = notification.payload.partition(":")
                    on_notify(run_id, event_type)
        except (psycopg.Error, OSError) as exc:
            log.warning("LISTEN connection lost (%s); reconnecting", type(exc).__name__)
            await asyncio.sleep(1.0)
