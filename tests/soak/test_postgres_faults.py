"""PostgreSQL faults under a live system (Daphne + runner): backends terminated with
pg_terminate_backend — the runner's query and LISTEN connections, the stream hub's LISTEN
connection, the stream's query workers — and the whole cluster restarted mid-run.

Nothing is lost: every run finishes with a sound log (tests/soak/faults.py), and every SSE
client, resuming with Last-Event-ID whenever its connection drops, receives exactly the log.
PostgreSQL only; the restart also needs the cluster of scripts/pgcluster.py (ARKLOOP_TEST_PG_*)."""
from __future__ import annotations

import contextlib
import random
import time
from collections import Counter

import pytest

from tests.runner.helpers import start
from tests.runner.processes import RunnerProcess, wait_until
from tests.servers import DaphneServer
from tests.soak.faults import (
    DAPHNE_APP,
    HUB_LISTEN_APP,
    RUNNER_APP,
    RUNNER_LISTEN_APP,
    ResumingReader,
    all_finished,
    assert_sound,
    backends,
    is_postgres,
    restart_control,
    restart_postgres,
    streaming_count,
    terminate_backends,
    tool_script,
)

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(not is_postgres(), reason="PostgreSQL faults")]


@pytest.fixture
def system(database_url, settings):
    """One Daphne and one runner on the test database, their connections named for pg_stat_activity."""
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = 0
    with DaphneServer(database_url=database_url, PGAPPNAME=DAPHNE_APP) as daphne, \
            RunnerProcess(database_url, "--concurrency", "32", PGAPPNAME=RUNNER_APP) as runner:
        yield daphne, runner
        print(*trouble(runner.log()), *trouble(daphne.read_log()), sep="\n")


def trouble(log: str) -> list[str]:
    """The warnings and errors of a process log (what the faults caused), for `pytest -s`."""
    return [line[:200] for line in log.splitlines() if " WARNING " in line or " ERROR " in line]


@contextlib.contextmanager
def followed_runs(actor, daphne: DaphneServer, count: int, **script):
    """Start `count` tool-calling runs, each followed by a resuming SSE reader; on exit wait for the
    runs to finish and check the logs and the streams."""
    run_ids = [start(actor, tool_script(index, **script))[1] for index in range(count)]
    readers = [ResumingReader(daphne.url, run_id, actor.auth) for run_id in run_ids]
    for reader in readers:
        reader.start()
    yield run_ids
    wait_until(lambda: all_finished(run_ids), what="every run to finish", timeout=180)
    for reader in readers:
        reader.join(timeout=60)
    outcomes = Counter(assert_sound(run_id, allowed_failures=()) for run_id in run_ids)
    for reader in readers:
        reader.assert_matches_log()
    reconnects = sum(reader.connects - 1 for reader in readers)
    print(f"outcomes {dict(outcomes)}, stream reconnects {reconnects}")


def terminate_everything() -> Counter:
    """Terminate the runner's connections, both LISTEN connections and the stream's query workers."""
    return terminate_backends(RUNNER_APP, RUNNER_LISTEN_APP, HUB_LISTEN_APP, DAPHNE_APP)


def test_terminated_backends_lose_nothing(system, alice):
    daphne, runner = system
    with followed_runs(alice, daphne, 6) as run_ids:
        wait_until(lambda: streaming_count(run_ids) >= 3, what="runs to stream")
        wait_until(lambda: backends(HUB_LISTEN_APP), what="the stream hub to listen")
        terminated = terminate_everything()
        assert terminated[RUNNER_APP] and terminated[RUNNER_LISTEN_APP] and terminated[HUB_LISTEN_APP], terminated
    wait_until(lambda: backends(HUB_LISTEN_APP) and backends(RUNNER_LISTEN_APP), what="both LISTENs to come back")
    assert "crashed" not in runner.log()


@pytest.mark.soak
def test_backends_terminated_again_and_again_lose_nothing(system, alice):
    daphne, runner = system
    # A termination can restart the runs' unfinished turns (their deltas may be lost), so faults
    # come a few seconds apart: a fault every 0.7 s starved 3-second turns (a turn is committed
    # whole or redone); a run interrupted three times now fails at the limit instead.
    rng = random.Random()
    with followed_runs(alice, daphne, 30, chunks=8, delay_ms=150) as run_ids:
        give_up = time.monotonic() + 240  # a hang guard, not a speed assertion
        while not all_finished(run_ids):
            assert time.monotonic() < give_up, "runs did not finish under repeated terminations"
            time.sleep(rng.uniform(1.5, 4.0))
            terminate_everything()
    assert "crashed" not in runner.log()


@pytest.fixture
def restartable():
    if restart_control() is None:
        pytest.skip("needs the cluster of scripts/pgcluster.py (ARKLOOP_TEST_PG_DATA, ARKLOOP_TEST_PG_BINDIR)")


def test_postgres_restart_mid_run_recovers_by_itself(restartable, system, alice):
    daphne, runner = system
    with followed_runs(alice, daphne, 6) as run_ids:
        wait_until(lambda: streaming_count(run_ids) >= 3, what="runs to stream")
        restart_postgres()
    assert "crashed" not in runner.log()


@pytest.mark.soak
def test_postgres_restarted_twice_while_many_runs_stream(restartable, system, alice):
    daphne, runner = system
    with followed_runs(alice, daphne, 30, chunks=20, delay_ms=150) as run_ids:
        for _ in range(2):
            wait_until(lambda: streaming_count(run_ids) >= 3 or all_finished(run_ids), what="runs to stream")
            restart_postgres()
            time.sleep(1.5)
    assert "crashed" not in runner.log()
