"""Writes of threads and messages."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from arkloop.authentication import Principal
from threads.models import Message, Thread


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
