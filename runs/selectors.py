"""Reads of runs, always through the caller's visibility (SPEC §2: a member sees their own runs)."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import QueryDict

from arkloop.access import parse_uuid, visible_to
from arkloop.api import keyset_after
from arkloop.authentication import Principal
from arkloop.errors import NotFound, ValidationFailed
from runs.filters import run_filter_apply
from runs.models import ACTIVE_STATUSES, Run
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
