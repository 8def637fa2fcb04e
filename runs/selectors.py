"""Reads of runs, always through the caller's visibility (SPEC §2: a member sees their own runs)."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Count, F, Min, Q, QuerySet, When
from django.http import QueryDict
from django.utils import timezone

from arkloop.access import parse_uuid, visible_to
from arkloop.api import keyset_after
from arkloop.authentication import Principal
from arkloop.errors import NotFound, ValidationFailed
from runs.filters import run_filter_apply
from runs.models import ACTIVE_STATUSES, Run, RunStatus
from threads.models import Thread


class RunNotFound(NotFound):
    code = "runs.not_found"
    message = "run not found"
NEWEST_FIRST = ("-created_at", "-id")


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    has_more: bool


def visible_runs(*, principal: Principal) -> QuerySet[Run]:
    """The runs the caller may see, with what the run object shows of their creator."""
    runs = Run.objects.select_related("created_by").defer("created_by__password")  # never needed here
    return visible_to(runs, principal)


def access_run(*, principal: Principal, run_id: object) -> Run:
    """The run if the caller may see it; otherwise runs.not_found (malformed id, other org, not theirs)."""
    pk = parse_uuid(run_id, not_found=RunNotFound)
    run = visible_runs(principal=principal).filter(pk=pk).first()
    if run is None:
        raise RunNotFound()
    return run


def _page(runs: QuerySet[Run], limit: int) -> RunPage:
    rows = list(runs.order_by(*NEWEST_FIRST)[: limit + 1])
    return RunPage(runs=rows[:limit], has_more=len(rows) > limit)


def _anchor(*, principal: Principal, before: str) -> Run:
    """The run a `before` cursor names; a cursor naming nothing the caller sees is invalid input."""
    try:
        return access_run(principal=principal, run_id=before)
    except NotFound:
        raise ValidationFailed({"before": ["not a run id from a previous page"]}) from None


def run_list(*, principal: Principal, limit: int, before: str | None = None,
             filters: QueryDict | None = None) -> RunPage:
    """The caller's runs newest first (created_at desc, id desc), after the `before` run, filtered."""
    runs = visible_runs(principal=principal)
    if filters:
        runs = run_filter_apply(queryset=runs, params=filters)
    if before:
        runs = keyset_after(runs, _anchor(principal=principal, before=before))
    return _page(runs, limit)


def thread_run_list(*, principal: Principal, thread: Thread, limit: int) -> list[Run]:
    """The thread's runs the caller may see, newest first."""
    return _page(visible_runs(principal=principal).filter(thread=thread), limit).runs


def thread_active_run(*, thread: Thread) -> Run | None:
    return Run.objects.filter(thread=thread, status__in=ACTIVE_STATUSES).first()


def thread_last_run(*, thread: Thread) -> Run | None:
    return Run.objects.filter(thread=thread).order_by(*NEWEST_FIRST).first()


# --- for operators (arkloop.metrics reads these at scrape time; no visibility: no caller) ---------

def runs_active_counts() -> dict[str, int]:
    """Active runs per status, every active status present (0 when none): one grouped count."""
    counts = dict.fromkeys((str(status) for status in ACTIVE_STATUSES), 0)
    rows = Run.objects.filter(status__in=ACTIVE_STATUSES).values_list("status").annotate(n=Count("pk"))
    counts.update({status: n for status, n in rows.order_by()})
    return counts


def runs_oldest_unclaimed_age_seconds() -> float:
    """How long the oldest run waiting for a runner has waited; 0 when none waits.

    Waiting: `running` with no live lease. It waits since its creation when no runner ever claimed
    it; else since its lease expired (its runner died) or since it was given back — released on a
    runner's shutdown, reaped, or answered after waiting for input (`leases.released`).
    """
    now = timezone.now()
    since = Case(When(attempt=0, then=F("created_at")), default=F("lease_expires_at"))
    oldest = (Run.objects.filter(status=RunStatus.RUNNING)
              .filter(Q(lease_owner="") | Q(lease_expires_at__lt=now))
              .aggregate(oldest=Min(since)))["oldest"]
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
