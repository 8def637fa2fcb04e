"""`runagents` as a real process: claims, crash recovery by takeover, fencing of a frozen runner,
cancel, graceful shutdown, and many runs over two runners."""
from __future__ import annotations

import signal

import pytest

from runs.models import Run
from tests.runner.helpers import answer, assert_gapless, deltas, events, of_type, run, start, stub, types
from tests.runner.processes import RunnerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
TERMINAL = ("completed", "failed", "cancelled")


def finished(run_id: str) -> bool:
    return run(run_id).status in TERMINAL


def deltas_after_restart(run_id: str) -> str:
    """The visible reply as a client rebuilds it: output before the last run.restarted is discarded."""
    kept: list[str] = []
    for type, data in events(run_id):
        if type == "run.restarted":
            kept = []
        elif type == "message.delta":
            kept.append(data["content"])
    return "".join(kept)


def test_runner_process_completes_runs_and_exits_cleanly_on_sigterm(alice, database_url):
    with RunnerProcess(database_url) as runner:
        _, run_id = start(alice, "hello runner")
        wait_until(lambda: finished(run_id), what="the run to finish")
        assert answer(run_id).content == "You said: hello runner"
        assert runner.terminate() == 0
        log = runner.log()
    assert f"run {run_id} claimed" in log and f"run {run_id} completed" in log and "stopped" in log


def test_killed_runner_is_replaced_without_repeating_a_recorded_tool(alice, database_url):
    script = stub(tools=[{"name": "echo", "arguments": {"text": "only once"}}], reply="a b c d e f g h",
                  chunks=8, delay_ms=300)
    _, run_id = start(alice, script)
    with RunnerProcess(database_url) as first:
        wait_until(lambda: len(deltas(run_id)) >= 2, what="the first runner to stream")
        first.kill()
    assert run(run_id).status == "running" and run(run_id).lease_owner != ""
    with RunnerProcess(database_url) as second:
        wait_until(lambda: finished(run_id), what="the takeover to finish the run")
        assert f"run {run_id} took over" in second.log()
    restarted = of_type(run_id, "run.restarted")
    assert [(r["attempt"], r["reason"]) for r in restarted] == [(2, "lease_expired")]
    assert len(of_type(run_id, "tool.result")) == 1  # echo ran once, before the crash
    assert run(run_id).status == "completed" and answer(run_id).content == "a b c d e f g h"
    assert deltas_after_restart(run_id) == "a b c d e f g h"
    assert_gapless(run_id)


def test_frozen_runner_cannot_write_after_its_lease_was_taken_over(alice, database_url):
    _, run_id = start(alice, stub(reply="one two three four five six", chunks=6, delay_ms=400))
    with RunnerProcess(database_url) as stale:
        wait_until(lambda: len(deltas(run_id)) >= 1, what="the first runner to stream")
        stale.signal(signal.SIGSTOP)
        with RunnerProcess(database_url) as fresh:
            wait_until(lambda: "run.restarted" in types(run_id), what="the takeover")
            stale.signal(signal.SIGCONT)
            wait_until(lambda: finished(run_id), what="the run to finish")
            wait_until(lambda: "write refused" in stale.log(), what="the stale runner to notice")
            # The outcome is logged after its commit, which the check above may see first.
            wait_until(lambda: f"run {run_id} completed" in fresh.log(), what="the fresh runner's log")
    assert run(run_id).status == "completed" and run(run_id).attempt == 2
    assert deltas_after_restart(run_id) == answer(run_id).content == "one two three four five six"
    assert_gapless(run_id)


def test_cancel_stops_a_streaming_run(alice, database_url):
    _, run_id = start(alice, stub(reply="x " * 40, chunks=40, delay_ms=200))
    with RunnerProcess(database_url):
        wait_until(lambda: len(deltas(run_id)) >= 1, what="streaming to start")
        assert alice.client.post(f"/v1/runs/{run_id}:cancel").status_code == 200
        wait_until(lambda: finished(run_id), what="the run to stop")
    seen = types(run_id)
    assert run(run_id).status == "cancelled" and seen[-1] == "run.cancelled"
    assert seen.index("run.cancel_requested") < seen.index("run.cancelled")
    assert len(deltas(run_id)) < 40 and not Run.objects.get(pk=run_id).messages.exists()
    assert run(run_id).lease_owner == ""
    assert_gapless(run_id)


def test_sigterm_releases_runs_that_outlive_the_grace_period(alice, database_url):
    _, run_id = start(alice, stub(reply="slow " * 12, chunks=12, delay_ms=250))
    with RunnerProcess(database_url, "--grace", "0.5") as runner:
        wait_until(lambda: len(deltas(run_id)) >= 1, what="streaming to start")
        assert runner.terminate() == 0
        assert f"run {run_id} released" in runner.log()
    released = run(run_id)
    assert released.status == "running" and released.lease_owner == ""
    with RunnerProcess(database_url):
        wait_until(lambda: finished(run_id), what="another runner to finish it", timeout=60)
    assert [r["reason"] for r in of_type(run_id, "run.restarted")] == ["released"]
    assert deltas_after_restart(run_id) == answer(run_id).content


def test_fifty_runs_over_two_runners_all_finish_exactly_once(alice, database_url, settings):
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = 0
    one, two = RunnerProcess(database_url, "--concurrency", "8"), RunnerProcess(database_url, "--concurrency", "8")
    one.spawn(), two.spawn()  # start both at once: they compete for the same runs
    with one, two:
        run_ids = [start(alice, stub(reply=f"answer {i}", delay_ms=20))[1] for i in range(50)]
        wait_until(lambda: Run.objects.filter(pk__in=run_ids, status="completed").count() == 50,
                   what="all runs to complete", timeout=120)
        logs = one.log(), two.log()
    for index, run_id in enumerate(run_ids):
        assert run(run_id).attempt == 1 and answer(run_id).content == f"answer {index}"
        assert types(run_id).count("run.completed") == 1
        assert_gapless(run_id)
        assert sum(f"run {run_id} claimed" in log for log in logs) == 1
