"""Wake-ups after an event commits: PostgreSQL NOTIFY, or in-process hooks on SQLite.

Three channels, with small payloads:
- `arkloop_events`, payload `<run_id>:<seq>` for every appended event (the SSE hub listens);
- `arkloop_work`, payload `<run_id>:<type>` for events a runner must act on (a new run, a cancel
  request, an input);
- `arkloop_webhooks`, empty payload: webhook deliveries are due (a runner's sender claims them).

On PostgreSQL the NOTIFY is issued inside the appending transaction: PostgreSQL delivers it only
when that transaction commits, and drops it on rollback, so listeners never hear of an event they
cannot read yet — the same promise as `transaction.on_commit`, without a second round trip and
without a window where a crash after COMMIT loses the wake-up. In-process hooks (tests, the SQLite
poller) run through `transaction.on_commit`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction

EVENTS_CHANNEL = "arkloop_events"
WORK_CHANNEL = "arkloop_work"
WEBHOOKS_CHANNEL = "arkloop_webhooks"
WORK_EVENT_TYPES = frozenset({"run.started", "run.cancel_requested", "run.input_provided", "run.cancelled"})

# Passed on from the default database's OPTIONS to the LISTEN connection.
_PASSED_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
# A LISTEN connection waits silently for hours: TCP keepalives notice a dead peer in about a minute.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}

_hooks: list[Callable[[str, int, str], None]] = []


def add_hook(hook: Callable[[str, int, str], None]) -> None:
    """Call `hook(run_id, seq, type)` after each committed append in this process."""
    _hooks.append(hook)


def remove_hook(hook: Callable[[str, int, str], None]) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


# The NOTIFYs of event rows a statement appends, as SELECT-list items: `{run}` and `{event}` name
# the run id and the event row (with `seq` and `type`) in that statement; `notify_each_params()`.
NOTIFY_EACH = ("pg_notify(%s, {run}::text || ':' || {event}.seq), "
               "CASE WHEN {event}.type = ANY(%s) THEN pg_notify(%s, {run}::text || ':' || {event}.type) END")


def notify_each_params() -> list[Any]:
    return [EVENTS_CHANNEL, sorted(WORK_EVENT_TYPES), WORK_CHANNEL]


def hooks_after_commit(events: list[tuple[Any, int, str]]) -> None:
    """Call the in-process hooks for these `(run_id, seq, type)` when the caller's transaction
    commits (at once outside one). The NOTIFYs are the caller's (`NOTIFY_EACH` in its statement)."""
    if _hooks and events:
        events = [(str(run_id), seq, type) for run_id, seq, type in events]
        transaction.on_commit(lambda: [hook(*event) for event in events for hook in list(_hooks)])


def events_appended(events: list[tuple[Any, int, str]]) -> None:
    """Schedule the wake-ups for appended `(run_id, seq, type)` (call inside the appending
    transaction): on PostgreSQL one statement per channel for all of them."""
    events = [(str(run_id), seq, type) for run_id, seq, type in events]
    if is_postgres() and events:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload",
                           [EVENTS_CHANNEL, [f"{run_id}:{seq}" for run_id, seq, _ in events]])
            work = [f"{run_id}:{type}" for run_id, _, type in events if type in WORK_EVENT_TYPES]
            if work:
                cursor.execute("SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload",
                               [WORK_CHANNEL, work])
    hooks_after_commit(events)


def deliveries_due() -> None:
    """Wake the runners' webhook senders when the caller's transaction commits (PostgreSQL; SQLite
    senders poll). PostgreSQL folds identical notifications of one transaction into one."""
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [WEBHOOKS_CHANNEL])


def listen_conninfo(*, application_name: str) -> str:
    """libpq connection string for a LISTEN connection (the stream hub's, a runner's).

    ARKLOOP_LISTEN_DATABASE_URL when set — a transaction-mode pooler such as PgBouncer cannot carry
    LISTEN, so this points straight at PostgreSQL — else the default database's own parameters.
    `application_name` is how operators (and the fault tests) find it in pg_stat_activity.
    """
    from psycopg.conninfo import make_conninfo

    if settings.ARKLOOP_LISTEN_DATABASE_URL:
        return make_conninfo(settings.ARKLOOP_LISTEN_DATABASE_URL, application_name=application_name, **_KEEPALIVES)
    db = connections["default"].settings_dict
    params = {"dbname": db["NAME"], "user": db.get("USER"), "password": db.get("PASSWORD"),
              "host": db.get("HOST"), "port": str(db.get("PORT") or "")}
    params.update({k: v for k, v in (db.get("OPTIONS") or {}).items() if k in _PASSED_OPTIONS})
    return make_conninfo(**{k: v for k, v in params.items() if v}, application_name=application_name, **_KEEPALIVES)
