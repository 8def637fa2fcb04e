"""Fixtures for the stream tests: runs made directly in the database (not through the runs API),
events appended with `event_append` and committed, so the Daphne server sees them."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.db import connection

from runs.events import event_append
from runs.models import Run
from tests.conftest import Actor
from threads.models import Thread


def make_run(actor: Actor, *, events: int = 0, finish: str | None = None) -> Run:
    """A run of `actor` with run.started plus `events` deltas, finished by `finish` when given."""
    thread = Thread.objects.create(org=actor.org, created_by=actor.user, title="stream test")
    run = Run.objects.create(org=actor.org, thread=thread, created_by=actor.user, trace_id=uuid.uuid4().hex,
                             persona_id="default@1", route_id="stub")
    event_append(run_id=run.id, type="run.started", data={"persona_id": "default@1", "route_id": "stub"})
    append_deltas(run, events)
    if finish:
        event_append(run_id=run.id, type=finish, data={})
    return run


def append_deltas(run: Run, count: int, *, start: int = 0) -> None:
    for index in range(start, start + count):
        event_append(run_id=run.id, type="message.delta", data={"content": f"w{index} ", "role": "assistant"})


def finish(run: Run, type: str = "run.completed") -> None:
    event_append(run_id=run.id, type=type, data={})


class Appender(threading.Thread):
    """Appends deltas (and a terminal event) to a run from another thread, committing each one."""

    def __init__(self, run: Run, *, count: int, pause: float = 0.0, terminal: str | None = "run.completed",
                 start_gate: threading.Event | None = None) -> None:
        super().__init__(daemon=True)
        self.run_obj, self.count, self.pause, self.terminal = run, count, pause, terminal
        self.start_gate = start_gate
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            if self.start_gate is not None:
                self.start_gate.wait(30)
            for index in range(self.count):
                append_deltas(self.run_obj, 1, start=index)
                if self.pause:
                    threading.Event().wait(self.pause)
            if self.terminal:
                finish(self.run_obj, self.terminal)
        except BaseException as exc:  # reported by join_ok
            self.error = exc
        finally:
            connection.close()

    def join_ok(self) -> None:
        self.join(30)
        assert not self.is_alive(), "appender did not finish"
        if self.error is not None:
            raise self.error


@pytest.fixture
def appender() -> Iterator[Callable[..., Appender]]:
    started: list[Appender] = []

    def start(run: Run, **kwargs) -> Appender:
        thread = Appender(run, **kwargs)
        started.append(thread)
        thread.start()
        return thread

    yield start
    for thread in started:
        thread.join(30)
