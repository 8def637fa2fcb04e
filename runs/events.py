"""The one way to append to a run's event log.

`event_append` allocates `seq` under the run's row lock (an UPDATE of `Run.last_seq`), so seqs are
gapless and strictly increasing with any number of concurrent writers; it refuses to write after
the terminal event, and, given the writer's `attempt`, refuses a runner whose lease was taken
over (fencing). A terminal event sets the run's status in the same UPDATE (and clears its
lease), so status and log always agree. The wake-up for streams and runners goes out only when
the caller's transaction commits (see `runs.notify`). The outcomes webhooks notify of (terminal
events and `run.waiting_for_input`) record their webhook deliveries in the same transaction
(`webhooks.outbox`).

Everything is stored cleaned, here, where every event passes: text from a model, a tool or an
error may hold NUL or lone surrogates, which PostgreSQL refuses and SSE frames cannot encode, so
event data and Run fields go through `arkloop.text.json_clean` (they become U+FFFD).
"""
from __future__ import annotations

import contextlib
import json
import uuid
from collections import defaultdict
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from arkloop.text import json_clean
from runs import notify
from runs.models import TERMINAL_EVENT_STATUS, TERMINAL_STATUSES, Run, RunEvent, RunStatus
from webhooks.models import WEBHOOK_EVENT_TYPES
from webhooks.outbox import deliveries_enqueue

_TERMINAL_STAMP = {
    RunStatus.COMPLETED: "completed_at",
    RunStatus.FAILED: "failed_at",
    RunStatus.CANCELLED: "cancelled_at",
}
_LEASE_CLEARED = {"lease_owner": "", "lease_expires_at": None}
_TERMINAL = [str(status) for status in TERMINAL_STATUSES]
# The head of an INSERT of event rows in our own SQL; the SELECT after it gives these columns in this order.
EVENTS_INSERT = f"INSERT INTO {RunEvent._meta.db_table} (run_id, seq, type, data, created_at)"


class EventRejected(Exception):
    """The event could not be appended: the run is finished, or the writer lost its lease."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def event_append(*, run_id: Any, type: str, data: dict | None = None, attempt: int | None = None,
                 status: RunStatus | None = None, fields: dict[str, Any] | None = None,
                 increments: dict[str, Any] | None = None) -> RunEvent:
    """Append one event to the log of run `run_id`, inside the caller's transaction.

    - `attempt`: the writer's fencing token; when given, the write succeeds only if the run's
      current attempt is still this one (else EventRejected("lease_lost")).
    - `status`: a status to set with this event; terminal event types set theirs automatically,
      with the matching `*_at` stamp.
    - `fields`: other Run columns to set to values in the same statement (totals, error_class, …);
      `increments`: numeric Run columns to add to (a turn's tokens and cost).

    Raises EventRejected("finished") once the run has its terminal event.
    """
    return events_append(run_id=run_id, events=[(type, data or {})], attempt=attempt, status=status,
                         fields=fields, increments=increments)[0]


def events_append(*, run_id: Any, events: list[tuple[str, dict]], attempt: int | None = None,
                  status: RunStatus | None = None, fields: dict[str, Any] | None = None,
                  increments: dict[str, Any] | None = None) -> list[RunEvent]:
    """`event_append` for several `(type, data)` events of one run, given consecutive seqs at once
    (a turn's commit and the run's completion). Only the last may be a terminal event.

    On PostgreSQL the fenced seq allocation, the Run columns, the inserts and the NOTIFYs are one
    statement (`_append_postgres`); elsewhere they are the ORM's statements.
    """
    assert events and not any(type in TERMINAL_EVENT_STATUS for type, _ in events[:-1]), events
    status = TERMINAL_EVENT_STATUS.get(events[-1][0], status)
    updates: dict[str, Any] = json_clean(fields or {})
    if status is not None:
        updates["status"] = status
        if status in _TERMINAL_STAMP:
            updates.setdefault(_TERMINAL_STAMP[status], timezone.now())
            updates.update(_LEASE_CLEARED)  # a finished run is held by nobody
    events = [(type, json_clean(data)) for type, data in events]
    hooked = any(type in WEBHOOK_EVENT_TYPES for type, _ in events)
    # One statement is atomic by itself; the webhook outbox must commit (or not) with its events.
    one_statement = notify.is_postgres()
    with transaction.atomic() if hooked or not one_statement else contextlib.nullcontext():
        append = _append_postgres if one_statement else _append_orm
        appended, org_id = append(run_id, events, attempt, updates, increments or {})
        for event in appended:
            if event.type in WEBHOOK_EVENT_TYPES:  # the outbox: deliveries commit (or roll back) with the event
                deliveries_enqueue(org_id=org_id, event=event)
    return appended


def _append_orm(run_id: Any, events: list[tuple[str, dict]], attempt: int | None, updates: dict[str, Any],
                increments: dict[str, Any]) -> tuple[list[RunEvent], Any]:
    runs = Run.objects.filter(pk=run_id).exclude(status__in=TERMINAL_STATUSES)
    if attempt is not None:
        runs = runs.filter(attempt=attempt)
    added = {name: F(name) + value for name, value in increments.items()}
    if runs.update(last_seq=F("last_seq") + len(events), **updates, **added) != 1:
        raise EventRejected(_why_rejected(run_id, attempt))
    last_seq, trace_id, org_id = Run.objects.filter(pk=run_id).values_list("last_seq", "trace_id", "org_id").get()
    first = last_seq - len(events) + 1
    appended = [RunEvent.objects.create(run_id=run_id, seq=first + offset, type=type,
                                        data={**data, "trace_id": trace_id})
                for offset, (type, data) in enumerate(events)]
    notify.events_appended([(run_id, event.seq, event.type) for event in appended])
    return appended, org_id


def _append_postgres(run_id: Any, events: list[tuple[str, dict]], attempt: int | None, updates: dict[str, Any],
                     increments: dict[str, Any]) -> tuple[list[RunEvent], Any]:
    """One statement: advance `last_seq` (and set `updates`) if the run is not finished and still
    held by `attempt`, insert the events under the new seqs, NOTIFY each. Rows come back only when
    the run's row was updated."""
    sets, params = ["last_seq = r.last_seq + %s"], [len(events)]
    for name, value in updates.items():
        field = Run._meta.get_field(name)
        sets.append(f"{field.column} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name, value in increments.items():
        column = Run._meta.get_field(name).column
        sets.append(f"{column} = r.{column} + %s")
        params.append(value)
    fence, fence_params = ("AND r.attempt = %s", [attempt]) if attempt is not None else ("", [])
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH r AS (UPDATE {Run._meta.db_table} r SET {', '.join(sets)} "
            f"WHERE r.id = %s AND NOT (r.status = ANY(%s)) {fence} RETURNING r.id, r.last_seq, r.trace_id, r.org_id), "
            f"e AS ({EVENTS_INSERT} "
            "SELECT r.id, r.last_seq - %s + x.n, x.type, x.data || jsonb_build_object('trace_id', r.trace_id), %s "
            "FROM r, unnest(%s::text[], %s::jsonb[]) WITH ORDINALITY AS x(type, data, n) RETURNING id, seq, type) "
            f"SELECT e.id, e.seq, r.trace_id, r.org_id, {notify.NOTIFY_EACH.format(run='r.id', event='e')} "
            "FROM e, r ORDER BY e.seq",
            [*params, run_id, _TERMINAL, *fence_params, len(events), now, [type for type, _ in events],
             [json.dumps(data) for _, data in events], *notify.notify_each_params()])
        rows = cursor.fetchall()
    if not rows:
        raise EventRejected(_why_rejected(run_id, attempt))
    notify.hooks_after_commit([(run_id, row[1], type) for row, (type, _) in zip(rows, events, strict=True)])
    trace_id, org_id = rows[0][2], rows[0][3]
    appended = [RunEvent(id=pk, run_id=run_id, seq=seq, type=type, data={**data, "trace_id": trace_id},
                         created_at=now)
                for (pk, seq, *_), (type, data) in zip(rows, events, strict=True)]
    return appended, org_id


def event_append_started(*, run: Run, data: dict) -> RunEvent:
    """Write `run.started` (seq 1) of a run inserted with `last_seq=1` by the caller's transaction.

    No row lock and no seq allocation are needed: until that transaction commits no other writer
    can see the run. This saves `run_create` the UPDATE … / SELECT … round trips of event_append.
    """
    event = RunEvent.objects.create(run_id=run.pk, seq=1, type="run.started",
                                    data={**json_clean(data), "trace_id": run.trace_id})
    notify.events_appended([(run.pk, 1, "run.started")])
    return event


def _why_rejected(run_id: Any, attempt: int | None) -> str:
    run = Run.objects.filter(pk=run_id).values("status", "attempt").first()
    if run is None:
        return "missing"
    if run["status"] in TERMINAL_STATUSES:
        return "finished"
    return "lease_lost" if attempt is not None and run["attempt"] != attempt else "unknown"


class BatchNotWritten(Exception):
    """`event_append_batch` failed before its commit, so none of its events was written (the
    transaction was rolled back). `__cause__` is the error. A failure at the commit itself is
    raised as it is: the batch may or may not have been written."""


def event_append_batch(items: list[tuple[Any, int, str, dict]]) -> dict[tuple[str, int], str]:
    """Append many `(run_id, attempt, type, data)` events, of many runs, in one transaction.

    The runner's group commit: `event_append`'s rules (gapless seqs under the run's row lock,
    nothing after the terminal event, fencing by `attempt`) for a batch, in a few statements.
    Only for events that change no Run column (deltas, tool calls and results). Events are
    grouped by (run, attempt), never merged across attempts: per group it is all or nothing, and
    the result maps each refused group to the reason (`{(run_id, attempt): reason}`).
    Raises BatchNotWritten when a statement fails (nothing was written).
    """
    groups: dict[tuple[str, int], list[tuple[str, dict]]] = defaultdict(list)
    for run_id, attempt, kind, data in items:
        assert kind not in TERMINAL_EVENT_STATUS and kind not in WEBHOOK_EVENT_TYPES, \
            "terminal events and run.waiting_for_input go through event_append"
        groups[(str(uuid.UUID(str(run_id))), attempt)].append((kind, json_clean(data)))
    with transaction.atomic():
        try:
            refused = _append_groups(groups)
        except Exception as exc:
            raise BatchNotWritten(f"{type(exc).__name__}: {exc}") from exc
    return refused


def _append_groups(groups: dict[tuple[str, int], list[tuple[str, dict]]]) -> dict[tuple[str, int], str]:
    allocated = _allocate_seqs(groups)
    rows = []
    for key, (last_seq, trace_id) in allocated.items():
        batch = groups[key]
        first = last_seq - len(batch) + 1
        rows += [(key[0], first + offset, type, {**data, "trace_id": trace_id})
                 for offset, (type, data) in enumerate(batch)]
    _insert_events(rows)
    notify.events_appended([(run_id, seq, type) for run_id, seq, type, _ in rows])
    return {key: _why_rejected(key[0], key[1]) for key in groups if key not in allocated}


def _insert_events(rows: list[tuple[str, int, str, dict]]) -> None:
    """Insert `(run_id, seq, type, data)` rows: on PostgreSQL one INSERT from arrays (cheap per row)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        RunEvent.objects.bulk_create([RunEvent(run_id=r, seq=q, type=t, data=d) for r, q, t, d in rows])
        return
    columns = list(zip(*rows, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            f"{EVENTS_INSERT} "
            "SELECT r, q, t, d, %s FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::jsonb[]) AS x(r, q, t, d)",
            [timezone.now(), list(columns[0]), list(columns[1]), list(columns[2]),
             [json.dumps(d) for d in columns[3]]])


def _allocate_seqs(groups: dict[tuple[str, int], list]) -> dict[tuple[str, int], tuple[int, str]]:
    """Advance `last_seq` of each run still held by that attempt: `{(run_id, attempt): (new last_seq, trace_id)}`."""
    if not groups:
        return {}
    if connection.vendor == "postgresql":
        table = Run._meta.db_table
        values = ", ".join(["(%s::uuid, %s::bigint, %s::integer)"] * len(groups))
        params = [p for (run_id, attempt), batch in groups.items() for p in (run_id, len(batch), attempt)]
        with connection.cursor() as cursor:
            # Two attempts of one run in a batch: only the run's current attempt matches a row.
            cursor.execute(
                f"UPDATE {table} AS r SET last_seq = r.last_seq + v.n FROM (VALUES {values}) AS v(id, n, attempt) "
                f"WHERE r.id = v.id AND r.attempt = v.attempt AND NOT (r.status = ANY(%s)) "
                f"RETURNING r.id, r.attempt, r.last_seq, r.trace_id", [*params, _TERMINAL])
            return {(str(run_id), attempt): (seq, trace_id) for run_id, attempt, seq, trace_id in cursor.fetchall()}
    allocated = {}
    for (run_id, attempt), batch in groups.items():
        runs = Run.objects.filter(pk=run_id, attempt=attempt).exclude(status__in=TERMINAL_STATUSES)
        if runs.update(last_seq=F("last_seq") + len(batch)) == 1:
            allocated[(run_id, attempt)] = Run.objects.filter(pk=run_id).values_list("last_seq", "trace_id").get()
    return allocated
