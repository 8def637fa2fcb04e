"""Writes of runs: create, cancel, answer, retry, complete. Every event goes through runs.events.event_append.

Each service does its checks and its writes in one transaction, under a row lock where a
concurrent writer (another request, the runner, the reaper) could change the answer.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from arkloop.access import parse_uuid, visible_sql
from arkloop.authentication import Principal
from arkloop.errors import Conflict, TooManyRequests, Unprocessable, ValidationFailed
from arkloop.rows import insert_columns, insert_params
from arkloop.services import org_lock
from arkloop.text import json_clean, text_clean
from arkloop.tracing import current_trace_id
from personas.models import Persona, Route
from personas.selectors import persona_resolve, route_resolve
from runs import notify
from runs.events import event_append, event_append_started, events_append
from runs.limits import Limits, LimitsInvalid, limits_check_lower, limits_effective, platform_limits
from runs.models import ACTIVE_STATUSES, Run, RunEvent, RunStatus
from runs.runner.costs import cost_number, credits_for
from runs.runner.leases import released
from runs.selectors import thread_last_run
from threads.models import Message, Thread
from threads.selectors import ThreadNotFound, access_thread
from threads.services import message_create

# How long a client should wait before asking again when the org is at its run cap.
LIMIT_RETRY_AFTER_SECONDS = 2


def _thread_busy() -> Conflict:
    return Conflict("runs.thread_busy", "the thread already has an active run")


def _check_thread_and_org_capacity(*, org_id: object, thread: Thread) -> None:
    """409 when the thread has an active run; else 429 when the org already has its maximum of
    active runs (0 = unlimited). One query for both when there is a cap.

    Called inside the creating transaction after locking the org row, so the count and the
    insert are one step for every concurrent creator of the org. (SQLite needs no lock: its
    IMMEDIATE transactions already let one writer in at a time.) The thread is the org's, so its
    active run is among the org's.
    """
    cap = settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG
    if cap <= 0:
        if Run.objects.filter(thread=thread, status__in=ACTIVE_STATUSES).exists():
            raise _thread_busy()
        return
    active = Run.objects.filter(org_id=org_id, status__in=ACTIVE_STATUSES).aggregate(
        in_org=Count("pk"), in_thread=Count("pk", filter=Q(thread=thread)))
    _check_capacity(in_thread=active["in_thread"], in_org=active["in_org"], cap=cap)


def _check_capacity(*, in_thread: int, in_org: int, cap: int) -> None:
    """409 runs.thread_busy when the thread has an active run, else 429 when the org is at its cap."""
    if in_thread:
        raise _thread_busy()
    if 0 < cap <= in_org:
        raise TooManyRequests("runs.limit_exceeded", f"the org already has {cap} active runs",
                              details={"max_concurrent_runs": cap},
                              headers={"Retry-After": str(LIMIT_RETRY_AFTER_SECONDS)})


def _run_insert(run: Run) -> None:
    """Insert the run; the partial unique index "one active run per thread" has the last word.

    No savepoint: after a violation the caller's transaction is only ever rolled back.
    """
    try:
        run.save(force_insert=True)
    except IntegrityError:
        raise _thread_busy() from None


def _run_limits(*, persona: Persona, requested: Limits | None) -> Limits:
    """The run's effective limits: the smallest of the platform's, the persona's and `requested`.

    Raises ValidationFailed naming `limits.<name>` for a requested limit above the others.
    """
    ceiling = limits_effective(platform_limits(), persona.limits or {})
    try:
        limits_check_lower(requested or {}, ceiling)
    except LimitsInvalid as exc:
        raise ValidationFailed({f"limits.{name}": messages for name, messages in exc.errors.items()}) from None
    return limits_effective(ceiling, requested or {})


def _run_settings(*, org_id: object, persona_id: str | None, route_id: str | None,
                  limits: Limits | None) -> tuple[Persona, Route, Limits]:
    """The persona, route and effective limits of a new run (ValidationFailed naming the field)."""
    persona = persona_resolve(org_id=org_id, persona_id=persona_id)
    route = route_resolve(org_id=org_id, route_id=route_id, persona=persona)
    return persona, route, _run_limits(persona=persona, requested=limits)


def _new_run(*, principal: Principal, thread_id: object, persona: Persona, route: Route, limits: Limits,
             retry_of: Run | None = None) -> Run:
    return Run(org_id=principal.org_id, thread_id=thread_id, created_by_id=principal.user_id,
               persona_id=persona.public_id, route_id=route.id, model=route.model, limits=limits,
               retry_of=retry_of, trace_id=current_trace_id(), last_seq=1)


def _started_data(run: Run) -> dict:
    started = {"persona_id": run.persona_id, "route_id": run.route_id}
    if run.retry_of_id is not None:
        started["retry_of"] = str(run.retry_of_id)
    return started


@transaction.atomic
def run_create(*, principal: Principal, thread: Thread, persona_id: str | None = None,
               route_id: str | None = None, limits: Limits | None = None, retry_of: Run | None = None) -> Run:
    """Start a run over `thread`: the run row and its `run.started` event (seq 1), in one transaction.

    `limits` (checked by runs.limits.limits_parse) may only lower the platform's and the persona's.
    Raises ValidationFailed (unknown persona_id / route_id, a limit too high), Conflict
    runs.thread_busy (the thread has an active run), TooManyRequests runs.limit_exceeded (the
    org's cap is reached). The runner is woken by the NOTIFY of `run.started`, delivered when
    this transaction commits.
    """
    persona, route, effective = _run_settings(org_id=principal.org_id, persona_id=persona_id, route_id=route_id,
                                              limits=limits)
    org_lock(org_id=principal.org_id)
    _check_thread_and_org_capacity(org_id=principal.org_id, thread=thread)
    run = _new_run(principal=principal, thread_id=thread.pk, persona=persona, route=route, limits=effective,
                   retry_of=retry_of)
    _run_insert(run)
    event_append_started(run=run, data=_started_data(run))
    return run


def run_start(*, principal: Principal, thread_id: object, persona_id: str | None = None,
              route_id: str | None = None, limits: Limits | None = None) -> Run:
    """`POST /v1/threads/{id}/runs`: `run_create` on a thread the caller may see.

    Raises ThreadNotFound first (as `access_thread`), then what `run_create` raises. On PostgreSQL
    the visibility check, the capacity check, both inserts and both NOTIFYs are one statement —
    after locking the org row in a statement of its own when the org has a cap (a statement sees
    what committed before it began, so the count must come after the lock). "The database has the
    last word" still holds: the unique index "one active run per thread" turns a concurrent
    creator's insert into runs.thread_busy. Elsewhere `access_thread` + `run_create`.
    """
    pk = parse_uuid(thread_id, not_found=ThreadNotFound)
    if connection.vendor != "postgresql":
        return run_create(principal=principal, thread=access_thread(principal=principal, thread_id=pk),
                          persona_id=persona_id, route_id=route_id, limits=limits)
    try:
        persona, route, effective = _run_settings(org_id=principal.org_id, persona_id=persona_id,
                                                  route_id=route_id, limits=limits)
    except ValidationFailed:
        access_thread(principal=principal, thread_id=pk)  # a thread not found is answered first
        raise
    run = _new_run(principal=principal, thread_id=pk, persona=persona, route=route, limits=effective)
    cap = settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG
    if cap <= 0:
        found, in_thread, in_org, inserted = _run_insert_checked(run, principal=principal, cap=cap)
    else:
        with transaction.atomic():
            org_lock(org_id=principal.org_id)
            found, in_thread, in_org, inserted = _run_insert_checked(run, principal=principal, cap=cap)
    if not found:
        raise ThreadNotFound()
    if not inserted:
        _check_capacity(in_thread=in_thread, in_org=in_org, cap=cap)
        raise _thread_busy()  # the unique index: a concurrent creator got there first
    notify.hooks_after_commit([(run.pk, 1, "run.started")])
    return run


def _run_insert_checked(run: Run, *, principal: Principal, cap: int) -> tuple[bool, int, int, bool]:
    """PostgreSQL: (thread visible, active runs in the thread, in the org (0 without a cap), run
    inserted) — the run, its `run.started` and their NOTIFYs written only when the thread is
    visible, has no active run and the org is under its cap."""
    visible, visible_params = visible_sql(principal, model=Thread, alias="t")
    statuses = [str(status) for status in ACTIVE_STATUSES]
    if cap > 0:
        active = (f"SELECT count(*) FILTER (WHERE thread_id = %s) AS in_thread, count(*) AS in_org "
                  f"FROM {Run._meta.db_table} WHERE org_id = %s AND status = ANY(%s)")
        active_params = [run.thread_id, principal.org_id, statuses]
    else:
        active = (f"SELECT count(*) AS in_thread, 0 AS in_org FROM {Run._meta.db_table} "
                  "WHERE thread_id = %s AND status = ANY(%s)")
        active_params = [run.thread_id, statuses]
    values = insert_params(run)
    event = RunEvent(run_id=run.pk, seq=1, type="run.started", data={**json_clean(_started_data(run)),
                                                                      "trace_id": run.trace_id})
    event_values = insert_params(event)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH thread AS (SELECT t.id FROM {Thread._meta.db_table} t WHERE t.id = %s AND t.deleted_at IS NULL "
            f"AND {visible}), active AS ({active}), "
            f"run AS (INSERT INTO {Run._meta.db_table} ({insert_columns(Run)}) "
            f"SELECT {', '.join(['%s'] * len(values))} FROM thread, active "
            f"WHERE active.in_thread = 0 AND (%s <= 0 OR active.in_org < %s) ON CONFLICT DO NOTHING RETURNING id), "
            f"started AS (INSERT INTO {RunEvent._meta.db_table} ({insert_columns(RunEvent)}) "
            f"SELECT {', '.join(['%s'] * len(event_values))} FROM run RETURNING run_id, seq, type), "
            f"notified AS (SELECT {notify.NOTIFY_EACH.format(run='s.run_id', event='s')} FROM started s) "
            f"SELECT EXISTS (SELECT 1 FROM thread), (SELECT in_thread FROM active), (SELECT in_org FROM active), "
            f"(SELECT count(*) FROM notified) > 0",
            [run.thread_id, *visible_params, *active_params, *values, cap, cap, *event_values,
             *notify.notify_each_params()])
        return cursor.fetchone()


def _is_held_by_runner(run: Run) -> bool:
    """A runner is executing the run: it holds an unexpired lease and the run is not parked."""
    if run.status == RunStatus.WAITING_FOR_INPUT or not run.lease_owner:
        return False
    return run.lease_expires_at is not None and run.lease_expires_at > timezone.now()


@transaction.atomic
def run_cancel(*, run: Run, reason: str | None = None) -> None:
    """Cancel a run; a no-op when it is finished or already being cancelled.

    A run no runner holds (not claimed yet, lease expired, or waiting for input) is cancelled at
    once (`run.cancelled`). A run a runner executes becomes `cancelling` with
    `run.cancel_requested`; that runner stops and writes `run.cancelled`. The decision is taken
    under the run's row lock, so a runner claiming at the same moment either sees the cancelled
    run (and leaves it) or has claimed first (and gets the request).
    """
    locked = Run.objects.select_for_update().filter(pk=run.pk).first()
    if locked is None or locked.is_terminal or locked.status == RunStatus.CANCELLING:
        return
    data = {"reason": reason} if reason else {}
    if _is_held_by_runner(locked):
        event_append(run_id=locked.pk, type="run.cancel_requested", data=data, status=RunStatus.CANCELLING)
    else:
        event_append(run_id=locked.pk, type="run.cancelled", data=data)


@transaction.atomic
def run_input_provide(*, run: Run, content: str) -> None:
    """Answer a run that waits for input: `run.input_provided`, and the run is `running` again.

    Raises Conflict runs.not_waiting_for_input unless the run waits for input right now (checked
    under the row lock, so an answer racing the input timeout either lands or is refused).
    """
    locked = Run.objects.select_for_update().filter(pk=run.pk).first()
    if locked is None or locked.status != RunStatus.WAITING_FOR_INPUT:
        raise Conflict("runs.not_waiting_for_input", "the run is not waiting for input")
    event_append(run_id=locked.pk, type="run.input_provided", data={"content": content},
                 status=RunStatus.RUNNING, fields={"waiting_since": None, **released()})


def _last_turn_answer(thread: Thread) -> tuple[Message, list[Message]]:
    """The last visible user message and the visible assistant messages after it (its answer).

    Raises Unprocessable runs.nothing_to_retry when the conversation has no user message.
    """
    visible = Message.objects.filter(thread=thread, hidden_at__isnull=True)
    question = visible.filter(role=Message.Role.USER).order_by("-created_at", "-id").first()
    if question is None:
        raise Unprocessable("runs.nothing_to_retry", "the thread has no user message to answer")
    answers = visible.filter(role=Message.Role.ASSISTANT, created_at__gte=question.created_at).exclude(
        pk=question.pk).order_by("created_at", "id")
    return question, list(answers)


def _answer_hide(answers: list[Message]) -> Run | None:
    """Hide the answer and everything the runs that wrote it wrote; returns the last such run."""
    run_ids = {m.run_id for m in answers if m.run_id}
    now = timezone.now()
    Message.objects.filter(pk__in=[m.pk for m in answers], hidden_at__isnull=True).update(hidden_at=now)
    Message.objects.filter(run_id__in=run_ids, hidden_at__isnull=True).update(hidden_at=now)
    last = answers[-1] if answers else None
    return last.run if last is not None and last.run_id else None


@transaction.atomic
def thread_retry(*, principal: Principal, thread: Thread, persona_id: str | None = None,
                 route_id: str | None = None, limits: Limits | None = None) -> Run:
    """Answer the thread's last user message again: hide the last answer, then start a new run.

    The new run reuses the previous run's persona, route and limits unless overridden (limits
    still only as low as the platform's and the persona's now), and its `retry_of` is that run
    (the run that wrote the hidden answer, else the thread's latest run).
    Raises Unprocessable runs.nothing_to_retry, Conflict runs.thread_busy (the hiding is then
    rolled back with everything else), and whatever run_create raises.
    """
    _, answers = _last_turn_answer(thread)
    previous = _answer_hide(answers) or thread_last_run(thread=thread)
    if previous is not None:
        persona_id = persona_id or previous.persona_id or None
        route_id = route_id or previous.route_id or None
        if limits is None:
            limits = _inherited_limits(previous, persona_id=persona_id, org_id=principal.org_id)
    return run_create(principal=principal, thread=thread, persona_id=persona_id, route_id=route_id,
                      limits=limits, retry_of=previous)


def _inherited_limits(previous: Run, *, persona_id: str | None, org_id: object) -> Limits:
    """The previous run's limits, each capped by today's platform and persona limits (so a retry
    is never refused for a limit lowered since)."""
    persona = persona_resolve(org_id=org_id, persona_id=persona_id)
    ceiling = limits_effective(platform_limits(), persona.limits or {})
    return {name: value for name, value in limits_effective(ceiling, previous.limits or {}).items()
            if value is not None}


@transaction.atomic
def run_complete(*, run_id: Any, attempt: int, thread_id: Any, reply: str, usage: dict[str, int],
                 cost: Decimal, turn: dict | None = None) -> Message:
    """A run's success: the assistant message, the run's totals and `run.completed`, in one transaction.

    `turn`: the data of the final turn's `llm.turn.completed` when it is not written yet; it then
    comes right before `run.completed` (the loop commits a final turn with its completion).
    Fenced by the runner's `attempt` (EventRejected when its lease was taken over, and then nothing
    is written). The reply is model output, so it is stored cleaned like every event (arkloop.text).
    """
    message = message_create(thread=Thread(pk=thread_id), content=text_clean(reply), role=Message.Role.ASSISTANT,
                             run_id=run_id)
    credits = credits_for(cost)
    completed = {"usage": usage, "total_cost_usd": cost_number(cost), "credits_used": credits,
                 "message_id": str(message.pk)}
    events_append(run_id=run_id, attempt=attempt,
                  events=[*([("llm.turn.completed", turn)] if turn is not None else []), ("run.completed", completed)],
                  fields={"total_input_tokens": usage["input_tokens"], "total_output_tokens": usage["output_tokens"],
                          "total_cached_input_tokens": usage["cached_input_tokens"], "total_cost_usd": cost,
                          "credits_used": credits})
    return message
