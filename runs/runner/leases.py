"""Claiming runs with a lease, renewing it, releasing it — the runner's only writes to Run's lease.

A run is runnable when it is `running` or `cancelling` and nobody holds a live lease on it.
Claiming increments `attempt`, the fencing token every later write of the claimant carries
(`event_append(attempt=…)`), so a runner that loses its lease cannot write for the run again.
Which runs to claim is decided fairly between orgs (`fair_pick`), then PostgreSQL claims them
with SELECT … FOR UPDATE SKIP LOCKED (runners never wait on each other); SQLite, which has one
writer at a time anyway, with a conditional UPDATE per run that counts only if exactly one row
changed. This module knows nothing of the agent loop; the loop and the runner build on it.
"""
from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from personas.models import Route
from personas.selectors import route_by_id
from runs import notify
from runs.events import EVENTS_INSERT, event_append
from runs.models import Run, RunStatus
from runs.runner.context import route_selected_data

RUNNABLE_STATUSES = (RunStatus.RUNNING, RunStatus.CANCELLING)


def released() -> dict[str, Any]:
    """The lease columns of a run given back (released, reaped, parked for input): nobody holds it,
    and `lease_expires_at` says since when — how long a runnable run has waited for a runner
    (`runs.selectors.runs_oldest_unclaimed_age_seconds`). A finished run has no lease at all."""
    return {"lease_owner": "", "lease_expires_at": timezone.now()}


# The third interruption of a run (its runner lost, or its writes lost) fails it instead of
# restarting it again: a run is restarted at most MAX_INTERRUPTIONS - 1 times, never in a loop.
MAX_INTERRUPTIONS = 3
_COLUMNS = ("id", "attempt", "lease_owner", "status", "last_seq", "route_id", "org_id")
ROUTE_SELECTED = "run.route.selected"


@dataclass
class Claim:
    """A run this runner holds: `attempt` is the fencing token every write for it carries."""

    run_id: str
    attempt: int
    status: str
    previous_owner: str  # non-empty: we took over an expired lease
    org_id: str = ""


def interruption_ends_run(restarts: int) -> bool:
    """True when one more interruption of a run restarted `restarts` times so far must fail it."""
    return restarts + 1 >= MAX_INTERRUPTIONS


def _runnable(now: Any) -> Q:
    return Q(status__in=RUNNABLE_STATUSES) & (Q(lease_owner="") | Q(lease_expires_at__lt=now))


def runs_claim(*, owner: str, limit: int, lease_seconds: float, held: Mapping[str, int] | None = None,
               slots_per_org: int | None = None) -> list[Claim]:
    """Claim up to `limit` runnable runs for `owner`, fairly between orgs (`fair_pick`).

    `held` counts the runs this runner executes per org, `slots_per_org` caps them (None: no cap).
    """
    if limit <= 0:
        return []
    now = timezone.now()
    picked = fair_pick(now=now, limit=limit, held=held or {}, slots_per_org=slots_per_org or limit)
    if not picked:
        return []
    expires = now + timedelta(seconds=lease_seconds)
    if connection.vendor == "postgresql":
        return _claim_skip_locked(owner, picked, now, expires)
    return _claim_conditional(owner, picked, now, expires)


def fair_pick(*, now: Any, limit: int, held: Mapping[str, int], slots_per_org: int) -> list[str]:
    """Which runnable runs to claim, in order: again and again, the oldest run of the org that has
    the fewest runs executing (on any runner), skipping orgs that hold `slots_per_org` of this
    runner's slots. So a flooding org gets its share, and another org's run starts at the next
    free slot whatever the flood's age. Reads without locks: the claim then skips what another
    runner took meanwhile."""
    queued, executing = _queued_and_executing(now, per_org=min(limit, slots_per_org))
    mine = Counter({str(org): count for org, count in held.items()})
    picked: list[str] = []
    while len(picked) < limit:
        open_orgs = [org for org, runs in queued.items() if runs and mine[str(org)] < slots_per_org]
        if not open_orgs:
            break
        org = min(open_orgs, key=lambda o: (executing[o], queued[o][0][1]))
        picked.append(queued[org].popleft()[0])
        executing[org] += 1
        mine[str(org)] += 1
    return picked


def _queued_and_executing(now: Any, *, per_org: int) -> tuple[dict[Any, deque[tuple[str, Any]]], Counter]:
    """`{org_id: deque of (run_id, created_at)}`, each org's `per_org` oldest runnable runs, and
    how many runs each of those orgs has executing (a live lease) — one query on PostgreSQL."""
    if connection.vendor != "postgresql":
        queued = _oldest_runnable_per_org(now, per_org=per_org)
        executing = Counter(dict(
            Run.objects.filter(org_id__in=queued, status__in=RUNNABLE_STATUSES, lease_expires_at__gte=now)
            .exclude(lease_owner="").values("org_id").annotate(n=Count("id")).values_list("org_id", "n")))
        return queued, executing
    table, statuses = Run._meta.db_table, [str(status) for status in RUNNABLE_STATUSES]
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH queued AS (SELECT id, org_id, created_at FROM (SELECT r.id, r.org_id, r.created_at, row_number() "
            "OVER (PARTITION BY r.org_id ORDER BY r.created_at, r.id) AS rank "
            f"FROM {table} r WHERE r.status = ANY(%s) AND (r.lease_owner = '' OR r.lease_expires_at < %s)) ranked "
            "WHERE rank <= %s), "
            f"executing AS (SELECT x.org_id, count(*) AS n FROM {table} x "
            "WHERE x.org_id IN (SELECT org_id FROM queued) AND x.status = ANY(%s) AND x.lease_expires_at >= %s "
            "AND x.lease_owner <> '' GROUP BY x.org_id) "
            "SELECT q.id, q.org_id, q.created_at, coalesce(e.n, 0) FROM queued q "
            "LEFT JOIN executing e ON e.org_id = q.org_id ORDER BY q.created_at, q.id",
            [statuses, now, per_org, statuses, now])
        rows = cursor.fetchall()
    queued: dict[Any, deque[tuple[str, Any]]] = defaultdict(deque)
    executing: Counter = Counter()
    for pk, org_id, created_at, running in rows:
        queued[org_id].append((str(pk), created_at))
        executing[org_id] = running
    return queued, executing


def _oldest_runnable_per_org(now: Any, *, per_org: int) -> dict[Any, deque[tuple[str, Any]]]:
    """`{org_id: deque of (run_id, created_at)}`: each org's `per_org` oldest runnable runs."""
    ranked = Run.objects.filter(_runnable(now)).annotate(
        rank=Window(RowNumber(), partition_by=[F("org_id")], order_by=[F("created_at").asc(), F("id").asc()]))
    queued: dict[Any, deque[tuple[str, Any]]] = defaultdict(deque)
    for pk, org_id, created_at in (ranked.filter(rank__lte=per_org).order_by("created_at", "id")
                                   .values_list("id", "org_id", "created_at")):
        queued[org_id].append((str(pk), created_at))
    return queued


def _claim_skip_locked(owner: str, picked: list[str], now: Any, expires: Any) -> list[Claim]:
    """PostgreSQL, one statement: lock the picked runs still runnable (skipping those another
    runner holds locked), take their leases, and write `run.route.selected` for the fresh ones
    (`_announce_routes`' rule, the route read in the same statement) with its NOTIFY."""
    table, statuses = Run._meta.db_table, [str(status) for status in RUNNABLE_STATUSES]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH locked AS (SELECT {', '.join(f'r.{c}' for c in _COLUMNS)} FROM {table} r "
            "WHERE r.id = ANY(%s::uuid[]) AND r.status = ANY(%s) AND (r.lease_owner = '' OR r.lease_expires_at < %s) "
            "FOR UPDATE SKIP LOCKED), "
            "fresh AS (SELECT l.id, route.model, jsonb_build_object('route_id', route.id, 'provider', route.provider, "
            f"'model', route.model) AS data FROM locked l JOIN {Route._meta.db_table} route ON route.id = l.route_id "
            "WHERE l.last_seq = 1 AND l.status = %s), "
            f"claimed AS (UPDATE {table} r SET attempt = r.attempt + 1, lease_owner = %s, lease_expires_at = %s, "
            "last_seq = r.last_seq + (f.id IS NOT NULL)::int, model = coalesce(f.model, r.model) "
            "FROM locked l LEFT JOIN fresh f ON f.id = l.id WHERE r.id = l.id "
            "RETURNING r.id, r.last_seq, r.trace_id, f.data), "
            f"announced AS ({EVENTS_INSERT} "
            "SELECT c.id, c.last_seq, %s, c.data || jsonb_build_object('trace_id', c.trace_id), %s "
            "FROM claimed c WHERE c.data IS NOT NULL RETURNING run_id, seq, type), "
            f"notified AS (SELECT {notify.NOTIFY_EACH.format(run='a.run_id', event='a')} FROM announced a) "
            f"SELECT {', '.join(f'l.{c}' for c in _COLUMNS)}, c.data IS NOT NULL, (SELECT count(*) FROM notified) "
            "FROM locked l JOIN claimed c ON c.id = l.id",
            [picked, statuses, now, RunStatus.RUNNING.value, owner, expires, ROUTE_SELECTED, now,
             *notify.notify_each_params()])
        rows = cursor.fetchall()
    rows.sort(key=lambda row: picked.index(str(row[0])))
    notify.hooks_after_commit([(row[0], 2, ROUTE_SELECTED) for row in rows if row[-2]])
    return [_claim(row[:-2]) for row in rows]


def _claim_conditional(owner: str, picked: list[str], now: Any, expires: Any) -> list[Claim]:
    rows = {str(row[0]): row for row in Run.objects.filter(_runnable(now), pk__in=picked).values_list(*_COLUMNS)}
    claims, won = [], []
    for row in (rows[pk] for pk in picked if pk in rows):
        pk, attempt = row[0], row[1]
        changed = Run.objects.filter(_runnable(now), pk=pk, attempt=attempt).update(
            attempt=attempt + 1, lease_owner=owner, lease_expires_at=expires)
        if changed == 1:  # another runner did not get there first
            claims.append(_claim(row))
            won.append(row)
    _announce_routes(won)
    return claims


def _claim(row: tuple) -> Claim:
    pk, attempt, previous, status, _, _, org_id = row
    return Claim(str(pk), attempt + 1, status, previous, org_id=str(org_id))


def _announce_routes(rows: list[tuple]) -> None:
    """`run.route.selected` for fresh runs right at the claim: the first thing a client sees, sooner.
    (SQLite; on PostgreSQL the claim statement does the same.)"""
    fresh = [(pk, attempt + 1, route_id) for pk, attempt, _, status, last_seq, route_id, _ in rows
             if last_seq == 1 and status == RunStatus.RUNNING and route_id]
    routes = {route_id: route for route_id in {route_id for *_, route_id in fresh}
              if (route := route_by_id(route_id)) is not None}
    for pk, attempt, route_id in fresh:
        if route_id in routes:
            event_append(run_id=pk, type=ROUTE_SELECTED, data=route_selected_data(routes[route_id]),
                         attempt=attempt, fields={"model": routes[route_id].model})


def leases_renew(*, owner: str, held: dict[str, int], lease_seconds: float) -> list[str]:
    """Extend the leases `owner` holds (`{run_id: attempt}`); returns the runs whose lease was lost.

    Each row is its own statement and transaction (autocommit), on purpose: one transaction over
    all the rows would hold some run locks while waiting for others, in an order the writer's
    batch UPDATE does not share — a deadlock, found by tests/soak/test_runner_kills.py."""
    expires = timezone.now() + timedelta(seconds=lease_seconds)
    return [run_id for run_id, attempt in held.items()
            if Run.objects.filter(pk=run_id, attempt=attempt, lease_owner=owner).update(lease_expires_at=expires) != 1]


def lease_release(*, run_id: str, attempt: int, owner: str, restart_reason: str | None = None) -> bool:
    """Give the run back at once, so another runner claims it without waiting for expiry.

    With `restart_reason` (the run was interrupted: its writes may be lost), `run.restarted` is
    written with the release, in one transaction, so the interruption counts towards the limit
    even if nothing else of the attempt reached the log. Without (shutdown), the next claimant
    marks a restart only if the run had output in flight.
    """
    if restart_reason is None:
        return Run.objects.filter(pk=run_id, attempt=attempt, lease_owner=owner).update(**released()) == 1
    with transaction.atomic():
        if Run.objects.filter(pk=run_id, attempt=attempt, lease_owner=owner).update(**released()) != 1:
            return False
        event_append(run_id=run_id, type="run.restarted", attempt=attempt,
                     data={"attempt": attempt + 1, "reason": restart_reason})
    return True


def runs_cancelling(*, owner: str) -> list[str]:
    """The runs this owner executes that were asked to stop (the SQLite stand-in for NOTIFY)."""
    return [str(pk) for pk in Run.objects.filter(lease_owner=owner, status=RunStatus.CANCELLING)
            .values_list("id", flat=True)]
