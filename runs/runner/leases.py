"""Claiming runs with a lease, renewing it, releasing it — the runner's only writes to Run's lease.

A run is runnable when it is `running` or `cancelling` and nobody holds a live lease on it.
Claiming increments `attempt`, the fencing token every later write of the claimant carries
(`event_append(attempt=…)`), so a runner that loses its lease cannot write for the run again.
PostgreSQL claims with SELECT … FOR UPDATE SKIP LOCKED (runners never wait on each other);
SQLite, which has one writer at a time anyway, with a conditional UPDATE per run that counts
only if exactly one row changed.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from personas.models import Route
from runs.events import event_append
from runs.models import Run, RunStatus
from runs.runner.context import route_selected_data
from runs.runner.loop import Claim

RUNNABLE_STATUSES = (RunStatus.RUNNING, RunStatus.CANCELLING)
_COLUMNS = ("id", "attempt", "lease_owner", "status", "last_seq", "route_id")


def _runnable(now: Any) -> Q:
    return Q(status__in=RUNNABLE_STATUSES) & (Q(lease_owner="") | Q(lease_expires_at__lt=now))


def runs_claim(*, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
    """Claim up to `limit` runnable runs, oldest first, for `owner`."""
    if limit <= 0:
        return []
    now = timezone.now()
    expires = now + timedelta(seconds=lease_seconds)
    if connection.vendor == "postgresql":
        return _claim_skip_locked(owner, limit, now, expires)
    return _claim_conditional(owner, limit, now, expires)


def _claim_skip_locked(owner: str, limit: int, now: Any, expires: Any) -> list[Claim]:
    with transaction.atomic():
        rows = list(Run.objects.select_for_update(skip_locked=True).filter(_runnable(now))
                    .order_by("created_at").values_list(*_COLUMNS)[:limit])
        if rows:
            Run.objects.filter(pk__in=[row[0] for row in rows]).update(
                attempt=F("attempt") + 1, lease_owner=owner, lease_expires_at=expires)
        claims = [Claim(str(pk), attempt + 1, status, previous) for pk, attempt, previous, status, *_ in rows]
        _announce_routes(rows)
    return claims


def _claim_conditional(owner: str, limit: int, now: Any, expires: Any) -> list[Claim]:
    rows = list(Run.objects.filter(_runnable(now)).order_by("created_at").values_list(*_COLUMNS)[:limit])
    claims, won = [], []
    for row in rows:
        pk, attempt, previous, status, *_ = row
        changed = Run.objects.filter(_runnable(now), pk=pk, attempt=attempt).update(
            attempt=attempt + 1, lease_owner=owner, lease_expires_at=expires)
        if changed == 1:  # another runner did not get there first
            claims.append(Claim(str(pk), attempt + 1, status, previous))
            won.append(row)
    _announce_routes(won)
    return claims


def _announce_routes(rows: list[tuple]) -> None:
    """`run.route.selected` for fresh runs right at the claim: the first thing a client sees, sooner."""
    fresh = [(pk, attempt + 1, route_id) for pk, attempt, _, status, last_seq, route_id in rows
             if last_seq == 1 and status == RunStatus.RUNNING and route_id]
    routes = {route.pk: route for route in Route.objects.filter(pk__in={route_id for *_, route_id in fresh})}
    for pk, attempt, route_id in fresh:
        if route_id in routes:
            event_append(run_id=pk, type="run.route.selected", data=route_selected_data(routes[route_id]),
                         attempt=attempt, fields={"model": routes[route_id].model})


def leases_renew(*, owner: str, held: dict[str, int], lease_seconds: float) -> list[str]:
    """Extend the leases `owner` holds (`{run_id: attempt}`); returns the runs whose lease was lost.

    Each row is its own statement and transaction (autocommit), on purpose: one transaction over
    all the rows would hold some run locks while waiting for others, in an order the writer's
    batch UPDATE does not share — a deadlock, found by tests/soak/test_runner_kills.py."""
    expires = timezone.now() + timedelta(seconds=lease_seconds)
    return [run_id for run_id, attempt in held.items()
            if Run.objects.filter(pk=run_id, attempt=attempt, lease_owner=owner).update(lease_expires_at=expires) != 1]


def lease_release(*, run_id: str, attempt: int, owner: str) -> bool:
    """Give the run back at once (shutdown), so another runner claims it without waiting for expiry."""
    return Run.objects.filter(pk=run_id, attempt=attempt, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None) == 1


def runs_cancelling(*, owner: str) -> list[str]:
    """The runs this owner executes that were asked to stop (the SQLite stand-in for NOTIFY)."""
    return [str(pk) for pk in Run.objects.filter(lease_owner=owner, status=RunStatus.CANCELLING)
            .values_list("id", flat=True)]
