"""Helpers for runner stories: start runs through the real API, drive a runner in-process."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from runs.models import Run, RunEvent
from runs.runner.worker import Worker
from threads.models import Message


def stub(**script: Any) -> str:
    """A `/stub {json}` message."""
    return "/stub " + json.dumps(script)


def start(actor, content: str, thread_id: str | None = None, **body: Any) -> tuple[str, str]:
    """Post `content` (to a new thread unless given) and start a run; returns (thread_id, run_id)."""
    if thread_id is None:
        thread_id = actor.client.post("/v1/threads", {"title": "runner story"}).json()["id"]
    assert actor.client.post(f"/v1/threads/{thread_id}/messages", {"content": content}).status_code == 201
    response = actor.client.post(f"/v1/threads/{thread_id}/runs", body)
    assert response.status_code == 201, response.content
    return thread_id, response.json()["run_id"]


def provide_input(actor, run_id: str, content: str) -> None:
    response = actor.client.post(f"/v1/runs/{run_id}/input", {"content": content})
    assert response.status_code == 200, response.content


def run_once(**options: Any) -> Worker:
    """Run an in-process runner until nothing is runnable (`runagents --once`)."""
    options.setdefault("db_threads", 2)
    worker = Worker(**options)
    asyncio.run(worker.run(once=True))
    return worker


def events(run_id: str) -> list[tuple[str, dict]]:
    return list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("type", "data"))


def types(run_id: str) -> list[str]:
    return [type for type, _ in events(run_id)]


def of_type(run_id: str, type: str) -> list[dict]:
    return [data for t, data in events(run_id) if t == type]


def deltas(run_id: str) -> list[str]:
    return [data["content"] for data in of_type(run_id, "message.delta") if data.get("channel") is None]


def run(run_id: str) -> Run:
    return Run.objects.get(pk=run_id)


def answer(run_id: str) -> Message:
    return Message.objects.get(run_id=run_id, role=Message.Role.ASSISTANT)


def assert_gapless(run_id: str) -> None:
    seqs = list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    terminal = [t for t in types(run_id) if t in ("run.completed", "run.failed", "run.cancelled")]
    assert len(terminal) == 1 and types(run_id)[-1] == terminal[0]
