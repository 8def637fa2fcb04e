"""Reads the stream needs: the run (with the visibility check), its events after a cursor, and the
latest seq of many runs at once (the SQLite poller's one cheap query).

They run on `stream_db`, STREAM_DB_THREADS threads shared by every stream and the hub of the
process: a stream holds no connection of its own, idle or not, and a process uses at most
STREAM_DB_THREADS connections for streaming (plus the hub's LISTEN connection), however many
streams it serves. They only read, so `stream_db.read` retries one on a broken connection."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable

from django.db import connection

from arkloop.access import parse_uuid, visible_sql
from arkloop.authentication import Principal
from arkloop.db_threads import DbThreads
from runs.models import TERMINAL_STATUSES, Run, RunEvent
from runs.selectors import RunNotFound
from runs.stream.sse import Frame, render_frame

BATCH_SIZE = 500
STREAM_DB_THREADS = 4
stream_db = DbThreads(STREAM_DB_THREADS, name="stream-db")


def _db(field: str, value: object, model: type = Run) -> object:
    """`value` as the database wants it for `model.field` (a UUID is text on SQLite)."""
    return model._meta.get_field(field).get_db_prep_value(value, connection)


# The two reads every stream makes when it opens, and the hub once per event, in SQL: building
# them with the ORM cost 0.3-0.7 ms of CPU each (Django compiling the query), several times the
# query itself — a third of Daphne's CPU when 1,000 streams connect at once (docs/performance.md).
_RUN_STATUS = f"SELECT r.status FROM {Run._meta.db_table} r WHERE r.id = %s AND "
_EVENTS_AFTER = (f"SELECT seq, type, data, created_at FROM {RunEvent._meta.db_table} "
                 "WHERE run_id = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s")
_NO_UPPER_BOUND = 2**63 - 1  # seq is a 64-bit integer


def access_run_for_stream(*, principal: Principal, run_id: str) -> tuple[uuid.UUID, bool]:
    """The run's id and whether it is finished; runs.not_found when the caller may not see it
    (arkloop.access's visibility rule)."""
    pk = parse_uuid(run_id, not_found=RunNotFound)
    visible, params = visible_sql(principal, model=Run, alias="r")
    with connection.cursor() as cursor:
        cursor.execute(_RUN_STATUS + visible, [_db("id", pk), *params])
        row = cursor.fetchone()
    if row is None:
        raise RunNotFound()
    return pk, row[0] in TERMINAL_STATUSES


def run_is_finished(*, run_id: str) -> bool:
    return Run.objects.filter(pk=run_id, status__in=TERMINAL_STATUSES).exists()


def events_after(*, run_id: str, after_seq: int, upto: int | None = None,
                 limit: int = BATCH_SIZE) -> list[Frame]:
    """Up to `limit` rendered events of the run with after_seq < seq (≤ upto), in seq order."""
    upper = _NO_UPPER_BOUND if upto is None else upto
    with connection.cursor() as cursor:
        cursor.execute(_EVENTS_AFTER, [_db("run", run_id, RunEvent), after_seq, upper, limit])
        rows = cursor.fetchall()
    return [render_frame(run_id=run_id, seq=seq, type=type, data=_json(data), created_at=_aware(created_at))
            for seq, type, data, created_at in rows]


def _json(value: str | dict) -> dict:
    """A JSON column as Python (Django loads jsonb as text, as SQLite stores it)."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns the stored UTC time without its zone."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def last_seqs(*, run_ids: Iterable[str]) -> dict[str, int]:
    """{run_id: last_seq} for the given runs (those that exist)."""
    rows = Run.objects.filter(pk__in=list(run_ids)).values_list("id", "last_seq")
    return {str(pk): last_seq for pk, last_seq in rows}
