"""The one way to append to a run's event log.

`event_append` allocates `seq` under the run's row lock (an UPDATE of `Run.last_seq`), so seqs are
gapless and strictly increasing with any number of concurrent writers; it refuses to write after
the terminal event, and, given the writer's `attempt`, refuses a runner whose lease was taken
over (fencing). A terminal event sets the run's status in the same UPDATE, so status and log
always agree. The wake-up for streams and runners goes out only when the caller's transaction
commits (see `runs.notify`).
"""
from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from runs import notify
from runs.models import TERMINAL_EVENT_STATUS, TERMINAL_STATUSES, Run, RunEvent, RunStatus

_TERMINAL_STAMP = {
    RunStatus.COMPLETED: "completed_at",
    RunStatus.FAILED: "failed_at",
    RunStatus.CANCELLED: "cancelled_at",
}


class EventRejected(Exception):
    """The event could not be appended: the run is finished, or the writer lost its lease."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def event_append(*, run_id: Any, type: str, data: dict | None = None, attempt: int | None = None,
                 status: RunStatus | None = None, fields: dict[str, Any] | None = None) -> RunEvent:
    """Append one event to the log of run `run_id`, inside the caller's transaction.

    - `attempt`: the writer's fencing token; when given, the write succeeds only if the run's
      current attempt is still this one (else EventRejected("lease_lost")).
    - `status`: a status to set with this event; terminal event types set theirs automatically,
      with the matching `*_at` stamp.
    - `fields`: other Run columns to update in the same statement (totals, error_class, …).

    Raises EventRejected("finished") once the run has its terminal event.
    """
    status = TERMINAL_EVENT_STATUS.get(type, status)
    updates: dict[str, Any] = {"last_seq": F("last_seq") + 1, **(fields or {})}
    if status is not None:
        updates["status"] = status
        if status in _TERMINAL_STAMP:
            updates.setdefault(_TERMINAL_STAMP[status], timezone.now())
    with transaction.atomic():
        runs = Run.objects.filter(pk=run_id).exclude(status__in=TERMINAL_STATUSES)
        if attempt is not None:
            runs = runs.filter(attempt=attempt)
        if runs.update(**updates) != 1:
            raise EventRejected(_why_rejected(run_id, attempt))
        seq, trace_id = Run.objects.filter(pk=run_id).values_list("last_seq", "trace_id").get()
        event = RunEvent.objects.create(run_id=run_id, seq=seq, type=type,
                                        data={**(data or {}), "trace_id": trace_id})
        notify.event_appended(run_id=run_id, seq=seq, type=type)
    return event


def _why_rejected(run_id: Any, attempt: int | None) -> str:
    run = Run.objects.filter(pk=run_id).values("status", "attempt").first()
    if run is None:
        return "missing"
    if run["status"] in TERMINAL_STATUSES:
        return "finished"
    return "lease_lost" if attempt is not None and run["attempt"] != attempt else "unknown"
