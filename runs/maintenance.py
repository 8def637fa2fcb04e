"""Operator writes on the event store: purging the event logs of long-finished runs.

A purge deletes RunEvent rows only (and, with `purge_events`, finished webhook deliveries). Runs
keep their totals, status and stamps; threads keep their messages; active runs are never touched
(their logs are still being written and streamed).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from runs.models import TERMINAL_STATUSES, Run, RunEvent


def runs_finished_before(cutoff: dt.datetime) -> QuerySet[Run]:
    """Terminal runs whose outcome was stamped before `cutoff`."""
    finished = Q(completed_at__lt=cutoff) | Q(failed_at__lt=cutoff) | Q(cancelled_at__lt=cutoff)
    return Run.objects.filter(finished, status__in=TERMINAL_STATUSES)


def purgeable_events(*, older_than_days: int, now: dt.datetime | None = None) -> QuerySet[RunEvent]:
    cutoff = (now or timezone.now()) - dt.timedelta(days=older_than_days)
    return RunEvent.objects.filter(run__in=runs_finished_before(cutoff).values("pk"))


def delete_in_batches(rows: QuerySet, *, batch_size: int = 1000,
                      progress: Callable[[int], None] | None = None) -> int:
    """Delete `rows` (any model's queryset), `batch_size` rows per transaction, so the table is
    never locked for long. Calls `progress(deleted_so_far)` after each batch and returns the number
    deleted. Used for events here and for webhook deliveries (`purge_events`)."""
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(rows.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                return deleted
            deleted += rows.model.objects.filter(pk__in=ids).delete()[0]
        if progress:
            progress(deleted)
