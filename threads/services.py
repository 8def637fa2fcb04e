"""Writes of threads and messages."""
from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from arkloop.access import parse_uuid, visible_sql
from arkloop.authentication import Principal
from arkloop.rows import insert_columns, insert_params
from threads.models import Message, Thread
from threads.selectors import ThreadNotFound, access_thread


def thread_create(*, principal: Principal, title: str = "") -> Thread:
    return Thread.objects.create(org_id=principal.org_id, created_by_id=principal.user_id, title=title)


def thread_update(*, thread: Thread, title: str) -> Thread:
    thread.title = title
    thread.save(update_fields=["title", "updated_at"])
    return thread


def thread_delete(*, thread: Thread) -> None:
    """Soft delete: the thread disappears from the API; its runs and messages stay for the record."""
    Thread.objects.filter(pk=thread.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())


@transaction.atomic
def message_create(*, thread: Thread, content: str, role: str = Message.Role.USER, run_id=None) -> Message:
    """Add a message to a thread. Posting a message never starts a run."""
    message = Message.objects.create(thread=thread, role=role, content=content, run_id=run_id)
    Thread.objects.filter(pk=thread.pk).update(updated_at=timezone.now())
    return message


def message_post(*, principal: Principal, thread_id: object, content: str) -> Message:
    """A user's message on a thread the caller may see (`POST /v1/threads/{id}/messages`).

    Raises ThreadNotFound as `access_thread` would. On PostgreSQL the visibility check, the
    thread's `updated_at` and the insert are one statement (one round trip, nothing to compile):
    the hot path of every conversation. Elsewhere `access_thread` + `message_create`.
    """
    pk = parse_uuid(thread_id, not_found=ThreadNotFound)
    if connection.vendor != "postgresql":
        return message_create(thread=access_thread(principal=principal, thread_id=pk), content=content)
    message = Message(thread_id=pk, role=Message.Role.USER, content=content)
    values = insert_params(message)  # sets created_at (auto_now_add)
    visible, visible_params = visible_sql(principal, alias="t")
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH touched AS (UPDATE {Thread._meta.db_table} t SET updated_at = %s "
            f"WHERE t.id = %s AND t.deleted_at IS NULL AND {visible} RETURNING t.id) "
            f"INSERT INTO {Message._meta.db_table} ({insert_columns(Message)}) "
            f"SELECT {', '.join(['%s'] * len(values))} FROM touched RETURNING 1",
            [message.created_at, pk, *visible_params, *values])
        if cursor.fetchone() is None:
            raise ThreadNotFound()
    return message
