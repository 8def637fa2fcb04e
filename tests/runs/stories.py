"""Helpers for the Runs API stories: threads with a question, runs driven through their states."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from runs.events import event_append
from runs.models import Run, RunStatus
from threads.models import Message


def thread_with_question(actor, content: str = "hello") -> str:
    thread = actor.client.post("/v1/threads", {"title": "t"}).json()
    assert actor.client.post(f"/v1/threads/{thread['id']}/messages", {"content": content}).status_code == 201
    return thread["id"]


def start_run(actor, thread_id: str, body: dict | None = None) -> str:
    response = actor.client.post(f"/v1/threads/{thread_id}/runs", body or {})
    assert response.status_code == 201, response.content
    return response.json()["run_id"]


def finish(run_id: str, type: str = "run.completed", **data) -> None:
    """End a run the way the runner would: its terminal event."""
    event_append(run_id=run_id, type=type, data=data)


def park_for_input(run_id: str) -> None:
    event_append(run_id=run_id, type="run.waiting_for_input", data={"kind": "question", "prompt": "?"},
                 status=RunStatus.WAITING_FOR_INPUT)


def event_types(run_id: str) -> list[str]:
    return list(Run.objects.get(pk=run_id).events.order_by("seq").values_list("type", flat=True))


def hold(run_id: str, *, seconds: float = 60) -> None:
    """Make the run look claimed by a live runner (the runner's lease), or expired when seconds < 0."""
    Run.objects.filter(pk=run_id).update(lease_owner="runner-test", attempt=1,
                                         lease_expires_at=timezone.now() + timedelta(seconds=seconds))


def assistant_answer(thread_id: str, run_id: str, content: str = "You said: hello") -> Message:
    return Message.objects.create(thread_id=thread_id, role=Message.Role.ASSISTANT, content=content, run_id=run_id)
