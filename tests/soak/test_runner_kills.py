"""Runners SIGKILLed at random while runs call tools and stream: each dead runner is replaced, and
every run still ends exactly once, with a gapless log, no tool result recorded twice, and the
reply its deltas spell out. Runs end completed, or failed `worker.lost` after three lost runners.

The fast variant runs in `make test`; the long one is `make soak`. The random seed is printed
(`-s`) and can be pinned with ARKLOOP_SOAK_SEED to replay a failure's kill schedule."""
from __future__ import annotations

import contextlib
import os
import random
import time
from collections import Counter

import pytest

from tests.runner.helpers import start
from tests.runner.processes import RunnerProcess, wait_until
from tests.soak.faults import RUNNER_APP, all_finished, assert_sound, streaming_count, tool_script

pytestmark = pytest.mark.django_db(transaction=True)


def chaos(actor, database_url: str, *, runs: int, kills: int, settle: float = 300.0) -> Counter:
    """2 runners, `runs` tool-calling runs, `kills` random SIGKILLs each followed by a replacement."""
    seed = int(os.environ.get("ARKLOOP_SOAK_SEED", random.randrange(1 << 30)))
    print(f"chaos seed {seed}")
    rng = random.Random(seed)
    with contextlib.ExitStack() as stack:
        runners = [stack.enter_context(_spawned(database_url)) for _ in range(2)]
        run_ids = [start(actor, tool_script(index))[1] for index in range(runs)]
        for _ in range(kills):
            # Kill only while runs are in flight, at a random moment of their streaming.
            wait_until(lambda: streaming_count(run_ids) > 0 or all_finished(run_ids), what="streaming to start")
            time.sleep(rng.uniform(0.1, 1.5))
            victim = rng.randrange(len(runners))
            runners[victim].kill()
            runners[victim] = stack.enter_context(_spawned(database_url))
        wait_until(lambda: all_finished(run_ids), what="every run to end", timeout=settle)
        outcomes = Counter(assert_sound(run_id) for run_id in run_ids)
    print(f"chaos outcomes {dict(outcomes)}")
    return outcomes


@contextlib.contextmanager
def _spawned(database_url: str):
    with RunnerProcess(database_url, "--concurrency", "8", PGAPPNAME=RUNNER_APP) as runner:
        yield runner


def test_ten_runs_survive_two_random_runner_kills(alice, database_url, settings):
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = 0
    outcomes = chaos(alice, database_url, runs=10, kills=2)
    assert sum(outcomes.values()) == 10


@pytest.mark.soak
def test_fifty_runs_survive_random_runner_kills(alice, database_url, settings):
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = 0
    outcomes = chaos(alice, database_url, runs=50, kills=10)
    assert sum(outcomes.values()) == 50
