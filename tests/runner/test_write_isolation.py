"""A write that fails for one run fails only that run; a failing database restarts runs a bounded
number of times. The group-commit writer and an in-process runner on the real test database."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from arkloop.db_threads import DbThreads
from runs.events import EventRejected, event_append
from runs.models import Run
from runs.runner import tools, writer
from runs.runner.providers.base import ToolSpec
from runs.runner.writer import EventsUnstorable, EventWriter
from tests.runner.helpers import answer, assert_gapless, deltas, of_type, run, run_once, start, stub, types

pytestmark = pytest.mark.django_db(transaction=True)


class Reports:
    """What a writer told the runner."""

    def __init__(self) -> None:
        self.rejected: list[tuple[str, str, int]] = []
        self.errors: list[tuple[str, int]] = []
        self.unstorable: list[tuple[str, int]] = []

    def writer(self, db: DbThreads) -> EventWriter:
        return EventWriter(db, on_rejected=lambda *a: self.rejected.append(a),
                           on_error=lambda *a: self.errors.append(a),
                           on_unstorable=lambda *a: self.unstorable.append(a))


def write_then(queue, settle) -> None:
    """Queue events (one batch: the writer has not run yet), start the writer, then `settle`."""
    async def main() -> None:
        db = DbThreads(1, name="test-writes")
        task = None
        try:
            event_writer = queue(db)
            task = asyncio.create_task(event_writer.run_forever())
            await settle(event_writer)
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await asyncio.get_running_loop().run_in_executor(None, db.close)

    asyncio.run(main())


def delta(text: object) -> dict:
    return {"content": text, "role": "assistant"}


def test_a_batch_that_fails_for_one_run_is_written_again_run_by_run(alice, charlie):
    _, guilty = start(alice, "one")
    _, innocent = start(charlie, "two")
    Run.objects.filter(pk__in=[guilty, innocent]).update(attempt=1)
    reports = Reports()

    def queue(db: DbThreads) -> EventWriter:
        event_writer = reports.writer(db)
        event_writer.append(innocent, 1, "message.delta", delta("a "))
        event_writer.append(guilty, 1, "message.delta", delta({"not", "json"}))  # a set: no database stores it
        event_writer.append(innocent, 1, "message.delta", delta("b"))
        return event_writer

    async def settle(event_writer: EventWriter) -> None:
        await event_writer.flush(innocent, 1)
        with pytest.raises(EventsUnstorable):
            await event_writer.flush(guilty, 1)

    write_then(queue, settle)
    assert deltas(innocent) == ["a ", "b"] and deltas(guilty) == []
    assert reports.unstorable == [(guilty, 1)] and reports.errors == [] and reports.rejected == []


def test_events_of_an_attempt_that_lost_its_lease_are_never_written_under_the_next(alice):
    _, run_id = start(alice, "one")
    Run.objects.filter(pk=run_id).update(attempt=2)
    reports = Reports()

    stale = []

    def queue(db: DbThreads) -> EventWriter:
        event_writer = reports.writer(db)
        stale.append(event_writer.append(run_id, 1, "message.delta", delta("stale "), mergeable=True))
        event_writer.append(run_id, 2, "message.delta", delta("fresh"), mergeable=True)  # not merged into it
        return event_writer

    async def settle(event_writer: EventWriter) -> None:
        await event_writer.flush(run_id, 2)
        await asyncio.wait(stale)
        assert isinstance(stale[0].exception(), EventRejected)

    write_then(queue, settle)
    assert deltas(run_id) == ["fresh"] and reports.rejected == [(run_id, "lease_lost", 1)]


def test_only_the_run_whose_output_cannot_be_stored_fails(alice, charlie, persona, monkeypatch):
    monkeypatch.setitem(tools.REGISTRY, "sets", tools.Tool(ToolSpec("sets", "answers a set", {}), lambda _: {1, 2}))
    odd = persona("odd-tools", tools=["sets"])
    _, guilty = start(alice, stub(tools=[{"name": "sets", "arguments": {}}], reply="never"), persona_id=odd)
    _, innocent = start(charlie, stub(reply="fine " * 20, chunks=20, delay_ms=5))
    run_once()
    failed = of_type(guilty, "run.failed")
    assert [f["error_class"] for f in failed] == ["internal.error"] and run(guilty).attempt == 1
    assert run(innocent).status == "completed" and "run.restarted" not in types(innocent)
    assert "".join(deltas(innocent)) == answer(innocent).content == "fine " * 20
    assert_gapless(guilty)
    assert_gapless(innocent)


def failing_batches(monkeypatch, times: int) -> None:
    """The database fails the runner's next `times` batches at commit (the outcome is unknown)."""
    real = writer.event_append_batch
    left = [times]

    def flaky(items):
        if left[0] > 0:
            left[0] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real(items)

    monkeypatch.setattr(writer, "event_append_batch", flaky)


def test_a_failed_write_restarts_the_run_from_its_log(alice, monkeypatch):
    _, run_id = start(alice, stub(reply="one two three", chunks=3))
    failing_batches(monkeypatch, times=1)
    run_once()
    assert [r["reason"] for r in of_type(run_id, "run.restarted")] == ["database_error"]
    assert run(run_id).status == "completed" and answer(run_id).content == "one two three"
    assert_gapless(run_id)


def restarted_before(run_id: str, *reasons: str) -> None:
    for attempt, reason in enumerate(reasons, start=2):
        event_append(run_id=run_id, type="run.restarted", data={"attempt": attempt, "reason": reason})
    Run.objects.filter(pk=run_id).update(attempt=len(reasons) + 1)


def test_a_failed_write_on_the_third_interruption_fails_the_run(alice, monkeypatch):
    _, run_id = start(alice, stub(reply="one two three", chunks=3))
    restarted_before(run_id, "database_error", "lease_expired")
    failing_batches(monkeypatch, times=100)
    run_once()
    assert of_type(run_id, "run.failed")[0]["error_class"] == "internal.error"
    assert len(of_type(run_id, "run.restarted")) == 2 and run(run_id).status == "failed"


def test_interruptions_of_any_cause_count_towards_the_limit(alice):
    _, run_id = start(alice, "hi")
    restarted_before(run_id, "database_error", "released", "database_error")  # a shutdown is not counted
    Run.objects.filter(pk=run_id).update(lease_owner="dead-runner", lease_expires_at=timezone.now() - timedelta(1))
    run_once()
    assert of_type(run_id, "run.failed")[0]["error_class"] == "worker.lost"
