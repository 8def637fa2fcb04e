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


def message_create(*, thread: Thread, content: str, role: str = Message.Role.USER, run_id=None) -> Message:
    """Add a message to a thread and touch the thread's `updated_at`. Posting a message never starts a run.

    On PostgreSQL one statement (`_message_insert`); elsewhere a transaction of two.
    """
    message = Message(thread_id=thread.pk, role=role, content=content, run_id=run_id)
    if connection.vendor == "postgresql":
        if not _message_insert(message):
            raise ThreadNotFound()
        return message
    with transaction.atomic():
        message.save(force_insert=True)
        Thread.objects.filter(pk=thread.pk).update(updated_at=message.created_at)
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
    visible, params = visible_sql(principal, model=Thread, alias="t")
    if not _message_insert(message, condition=f"t.deleted_at IS NULL AND {visible}", params=params):
        raise ThreadNotFound()
    return message


def _message_insert(message: Message, *, condition: str = "TRUE", params: list | None = None) -> bool:
    """PostgreSQL: touch the message's thread (alias `t`) if it matches `condition`, and insert the
    message if it did — one statement. False when no thread matched (nothing written)."""
    values = insert_params(message)  # sets created_at (auto_now_add)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH touched AS (UPDATE {Thread._meta.db_table} t SET updated_at = %s "
            f"WHERE t.id = %s AND {condition} RETURNING t.id) "
            f"INSERT INTO {Message._meta.db_table} ({insert_columns(Message)}) "
            f"SELECT {', '.join(['%s'] * len(values))} FROM touched RETURNING 1",
            [message.created_at, message.thread_id, *(params or []), *values])
        return cursor.fetchone() is not None
