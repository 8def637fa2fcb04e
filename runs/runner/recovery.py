"""Sweeps for runs nobody is driving: used by every runner and by `manage.py reap_runs` (cron).

- A waiting run whose input never came within ARKLOOP_INPUT_TIMEOUT_SECONDS → `run.failed input.timeout`.
- A run whose runner's lease expired (the runner died) → its lease is taken away (attempt + 1
  fences the dead runner) and `run.restarted` is written, so the next runner resumes it at once;
  on its third interruption → `run.failed worker.lost`; a `cancelling` one → `run.cancelled`.
Each run is handled in its own transaction, guarded by a conditional UPDATE that only one
sweeper (or runner) can win.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from runs.events import EventRejected, event_append
from runs.models import Run, RunEvent, RunStatus
from runs.runner.leases import MAX_INTERRUPTIONS, RUNNABLE_STATUSES, interruption_ends_run, released
from runs.runner.state import RestartReason

BATCH = 100


def runs_fail_timed_out_inputs(*, now: Any = None) -> list[str]:
    """Fail the runs that waited for input longer than ARKLOOP_INPUT_TIMEOUT_SECONDS."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.ARKLOOP_INPUT_TIMEOUT_SECONDS)
    stale = Run.objects.filter(status=RunStatus.WAITING_FOR_INPUT, waiting_since__lt=cutoff)
    failed = []
    for pk in list(stale.values_list("id", flat=True)[:BATCH]):
        with transaction.atomic():
            # The no-op UPDATE locks the row and proves it is still waiting (input may just have come).
            if stale.filter(pk=pk).update(waiting_since=F("waiting_since")) != 1:
                continue
            _append(pk, "run.failed", {"error_class": "input.timeout",
                                       "message": "no input arrived within the input timeout"},
                    fields={"error_class": "input.timeout"})
            failed.append(str(pk))
    return failed


def runs_reap_expired_leases(*, now: Any = None) -> list[str]:
    """Take expired leases away from dead runners; returns the runs it touched."""
    now = now or timezone.now()
    expired = Run.objects.filter(status__in=RUNNABLE_STATUSES, lease_expires_at__lt=now).exclude(lease_owner="")
    reaped = []
    for pk, attempt, status in list(expired.values_list("id", "attempt", "status")[:BATCH]):
        with transaction.atomic():
            if expired.filter(pk=pk, attempt=attempt).update(attempt=attempt + 1, **released()) != 1:
                continue
            _reap(pk, attempt + 1, status)
            reaped.append(str(pk))
    return reaped


def _reap(pk: Any, attempt: int, status: str) -> None:
    if status == RunStatus.CANCELLING:
        _append(pk, "run.cancelled", {"reason": "cancel_requested"})
        return
    restarts = (RunEvent.objects.filter(run_id=pk, type="run.restarted")
                .exclude(data__reason=RestartReason.RELEASED).count())
    if interruption_ends_run(restarts):
        _append(pk, "run.failed", {"error_class": "worker.lost",
                                   "message": f"the run was interrupted {MAX_INTERRUPTIONS} times"},
                fields={"error_class": "worker.lost"})
    else:
        _append(pk, "run.restarted", {"attempt": attempt, "reason": RestartReason.LEASE_EXPIRED})


def _append(pk: Any, type: str, data: dict, **kwargs: Any) -> None:
    try:
        event_append(run_id=pk, type=type, data=data, **kwargs)
    except EventRejected:
        pass  # finished meanwhile: nothing to recover
