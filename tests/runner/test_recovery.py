"""Recovery: takeover of an expired lease, the lost-lease limit, reap_runs, fencing, delta merging."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from arkloop.db_threads import DbThreads
from runs.events import event_append, event_append_batch
from runs.models import Run
from runs.runner.writer import EventWriter
from tests.runner.helpers import answer, assert_gapless, deltas, of_type, run, run_once, start, stub, types

pytestmark = pytest.mark.django_db(transaction=True)


def die_holding(run_id: str, *, attempt: int = 1) -> None:
    """Leave the run as a dead runner leaves it: lease held by nobody alive, already expired."""
    Run.objects.filter(pk=run_id).update(attempt=attempt, lease_owner="dead-runner",
                                         lease_expires_at=timezone.now() - timedelta(seconds=1))


def crash_after_first_tool(run_id: str) -> None:
    """A runner's writes up to a crash: a committed turn with two calls, only the first one done."""
    write = lambda type, **data: event_append(run_id=run_id, type=type, data=data, attempt=1)  # noqa: E731
    Run.objects.filter(pk=run_id).update(attempt=1)
    write("run.route.selected", route_id="stub", provider="stub", model="stub")
    write("tool.call", tool_call_id="c1", tool_name="echo", arguments={"text": "first"})
    write("tool.call", tool_call_id="c2", tool_name="echo", arguments={"text": "second"})
    write("llm.turn.completed", usage={"input_tokens": 3, "output_tokens": 2, "cached_input_tokens": 0}, cost_usd=0)
    write("tool.result", tool_call_id="c1", tool_name="echo", result="first")
    write("message.delta", content="partial ", role="assistant")  # not a turn: discarded on restart
    die_holding(run_id)


def test_takeover_restarts_and_never_repeats_a_recorded_tool(alice):
    _, run_id = start(alice, stub(tools=[{"name": "echo", "arguments": {"text": "first"}},
                                         {"name": "echo", "arguments": {"text": "second"}}], reply="done"))
    crash_after_first_tool(run_id)
    run_once()
    assert of_type(run_id, "run.restarted")[0] == {"attempt": 2, "reason": "lease_expired",
                                                   "trace_id": run(run_id).trace_id}
    assert [(r["tool_call_id"], r["result"]) for r in of_type(run_id, "tool.result")] == [("c1", "first"),
                                                                                          ("c2", "second")]
    assert answer(run_id).content == "done" and deltas(run_id)[-1] == "done"
    assert run(run_id).total_input_tokens > 3  # the committed turn's usage is kept and the new turn's added
    assert_gapless(run_id)


def test_third_lost_lease_fails_the_run_as_worker_lost(alice):
    _, run_id = start(alice, "hi")
    for attempt in (2, 3):
        event_append(run_id=run_id, type="run.restarted", data={"attempt": attempt, "reason": "lease_expired"})
    die_holding(run_id, attempt=3)
    run_once()
    assert of_type(run_id, "run.failed")[0]["error_class"] == "worker.lost"
    assert run(run_id).status == "failed" and run(run_id).error_class == "worker.lost"


def test_resuming_after_input_is_not_a_restart(alice):
    _, run_id = start(alice, stub(ask="?"))
    run_once()
    alice.client.post(f"/v1/runs/{run_id}/input", {"content": "ok"})
    run_once()
    assert "run.restarted" not in types(run_id) and run(run_id).attempt == 2


def test_reap_runs_takes_an_expired_lease_away_and_a_runner_resumes_the_run(alice):
    _, run_id = start(alice, stub(tools=[{"name": "echo", "arguments": {"text": "first"}},
                                         {"name": "echo", "arguments": {"text": "second"}}], reply="done"))
    crash_after_first_tool(run_id)
    call_command("reap_runs")
    reaped = run(run_id)
    assert reaped.lease_owner == "" and reaped.attempt == 2 and types(run_id)[-1] == "run.restarted"
    run_once()
    assert len(of_type(run_id, "run.restarted")) == 1 and len(of_type(run_id, "tool.result")) == 2
    assert run(run_id).status == "completed"


def test_reap_runs_finishes_cancelling_runs_whose_runner_died(alice):
    _, run_id = start(alice, "hi")
    die_holding(run_id)
    event_append(run_id=run_id, type="run.cancel_requested", status="cancelling")
    call_command("reap_runs")
    assert run(run_id).status == "cancelled"


def test_reap_runs_fails_runs_whose_input_timed_out(alice, settings):
    _, run_id = start(alice, stub(ask="?"))
    run_once()
    settings.ARKLOOP_INPUT_TIMEOUT_SECONDS = 0
    call_command("reap_runs")
    assert run(run_id).status == "failed" and run(run_id).error_class == "input.timeout"


def test_reap_runs_leaves_live_leases_alone(alice):
    _, run_id = start(alice, "hi")
    Run.objects.filter(pk=run_id).update(attempt=1, lease_owner="alive",
                                         lease_expires_at=timezone.now() + timedelta(seconds=60))
    call_command("reap_runs")
    assert types(run_id) == ["run.started"] and run(run_id).lease_owner == "alive"


def test_batch_writes_of_a_stale_attempt_are_refused_and_others_are_kept(alice):
    _, stale = start(alice, "one")
    _, live = start(alice, "two")
    Run.objects.filter(pk__in=[stale, live]).update(attempt=2)
    refused = event_append_batch([(stale, 1, "message.delta", {"content": "late", "role": "assistant"}),
                                  (live, 2, "message.delta", {"content": "a", "role": "assistant"}),
                                  (live, 2, "message.delta", {"content": "b", "role": "assistant"})])
    assert refused == {(stale, 1): "lease_lost"}
    assert deltas(stale) == [] and deltas(live) == ["a", "b"]
    assert_gapless_prefix(live)


def assert_gapless_prefix(run_id: str) -> None:
    seqs = list(Run.objects.get(pk=run_id).events.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_writer_merges_queued_deltas_but_not_the_stubs(alice):
    _, real = start(alice, "one")
    _, scripted = start(alice, "two")

    async def write() -> None:
        db = DbThreads(1, name="test-writes")
        writer = EventWriter(db)
        task = asyncio.create_task(writer.run_forever())
        for piece in ("Hel", "lo ", "world"):  # queued together, before the writer runs
            writer.append(real, 0, "message.delta", {"content": piece, "role": "assistant"}, mergeable=True)
            writer.append(scripted, 0, "message.delta", {"content": piece, "role": "assistant"})
        await writer.flush(real, 0)
        await writer.flush(scripted, 0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, db.close)

    asyncio.run(write())
    assert deltas(real) == ["Hello world"] and deltas(scripted) == ["Hel", "lo ", "world"]
