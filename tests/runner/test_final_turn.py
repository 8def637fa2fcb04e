"""A final turn's `llm.turn.completed` is held back and written with `run.completed` (one write less,
docs/runner.md). Whatever ends or pauses the run before that write must still write it first — a
cancel, a failure, a release at shutdown — so the log never loses a turn that the model answered.

The moment between the final turn and the completion is too short to hit from outside, so these
tests put the cancel or the shutdown there, through the runner's own paths."""
from __future__ import annotations

import asyncio

import pytest

from runs.runner.loop import AgentLoop
from runs.runner.worker import StopReason, Worker
from tests.runner.helpers import deltas, of_type, run, run_once, start, stub, types

pytestmark = pytest.mark.django_db(transaction=True)
USAGE = {"input_tokens": 11, "output_tokens": 7}


def test_a_cancel_before_the_completion_write_writes_the_final_turn_first(alice, monkeypatch):
    _, run_id = start(alice, stub(reply="all done", usage=USAGE))

    async def cancelled_instead_of_completed(self):
        return await self.cancel("cancel_requested")

    monkeypatch.setattr(AgentLoop, "_complete", cancelled_instead_of_completed)
    run_once()
    assert types(run_id)[-2:] == ["llm.turn.completed", "run.cancelled"]
    assert of_type(run_id, "llm.turn.completed")[0]["usage"]["output_tokens"] == 7
    cancelled = run(run_id)
    assert cancelled.status == "cancelled"
    assert (cancelled.total_input_tokens, cancelled.total_output_tokens) == (11, 7)


def test_a_failure_before_the_completion_write_writes_the_final_turn_first(alice, monkeypatch):
    _, run_id = start(alice, stub(reply="all done", usage=USAGE))

    async def failed_instead_of_completed(self):
        return await self.fail("internal.error", "something broke")

    monkeypatch.setattr(AgentLoop, "_complete", failed_instead_of_completed)
    run_once()
    assert types(run_id)[-2:] == ["llm.turn.completed", "run.failed"]
    assert run(run_id).total_output_tokens == 7


def test_a_shutdown_before_the_completion_write_keeps_the_turn_so_the_model_is_not_asked_again(alice, monkeypatch):
    _, run_id = start(alice, stub(reply="all done", usage=USAGE))
    worker = Worker(db_threads=2)
    real_complete = AgentLoop._complete

    async def shut_down_instead_of_completed(self):
        worker.stop()  # no new claims; and the grace period is over for this run:
        worker.active[self.claim.run_id].stop_reason = StopReason.SHUTDOWN
        raise asyncio.CancelledError

    monkeypatch.setattr(AgentLoop, "_complete", shut_down_instead_of_completed)
    asyncio.run(worker.run(once=True))
    released = run(run_id)
    assert released.status == "running" and released.lease_owner == ""
    assert types(run_id)[-1] == "llm.turn.completed"
    assert released.total_output_tokens == 7

    monkeypatch.setattr(AgentLoop, "_complete", real_complete)
    run_once()
    completed = run(run_id)
    assert completed.status == "completed"
    assert deltas(run_id) == ["all ", "done"]  # the model answered once: nothing streamed twice
    assert len(of_type(run_id, "llm.turn.completed")) == 1
    assert completed.total_output_tokens == 7
    assert completed.messages.get(role="assistant").content == "all done"
