"""Reads of threads and messages, always through the caller's visibility."""
from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from arkloop.access import parse_uuid, visible_to
from arkloop.api import keyset_after
from arkloop.authentication import Principal
from arkloop.errors import NotFound, ValidationFailed
from threads.models import Message, Thread


class ThreadNotFound(NotFound):
    code = "threads.not_found"
    message = "thread not found"


def _with_active_run(threads: QuerySet[Thread]) -> QuerySet[Thread]:
    from runs.models import ACTIVE_STATUSES, Run

    active = Run.objects.filter(thread_id=OuterRef("pk"), status__in=ACTIVE_STATUSES).values("id")[:1]
    return threads.annotate(active_run_id=Subquery(active))


def thread_list(*, principal: Principal, limit: int, before: str | None = None) -> list[Thread]:
    threads = visible_to(Thread.objects.filter(deleted_at__isnull=True), principal)
    if before:
        threads = keyset_after(threads, _cursor_thread(principal=principal, thread_id=before))
    return list(_with_active_run(threads).order_by("-created_at", "-id")[:limit])


def _cursor_thread(*, principal: Principal, thread_id: str) -> Thread:
    """The thread a `before` cursor names; a cursor naming no visible thread is a 422 on `before`."""
    try:
        return access_thread(principal=principal, thread_id=thread_id)
    except NotFound:
        raise ValidationFailed({"before": ["must be the id of a thread from the previous page"]}) from None


def access_thread(*, principal: Principal, thread_id: object) -> Thread:
    """The thread if the caller may see it; otherwise threads.not_found (for any reason)."""
    pk = parse_uuid(thread_id, not_found=ThreadNotFound)
    threads = visible_to(Thread.objects.filter(pk=pk, deleted_at__isnull=True), principal)
    thread = _with_active_run(threads).first()
    if thread is None:
        raise ThreadNotFound()
    return thread


def message_list(*, thread: Thread, limit: int | None = None) -> list[Message]:
    """The conversation: visible messages, oldest first (the last `limit` of them)."""
    messages = Message.objects.filter(thread=thread, hidden_at__isnull=True)
    if limit is None:
        return list(messages.order_by("created_at", "id"))
    newest = list(messages.order_by("-created_at", "-id")[:limit])
    return newest[::-1]
