"""The runner: wake-up latency, 200 concurrent streaming runs in one process, cancel latency.

`run()` makes a database of its own on the benchmark's PostgreSQL cluster and measures in a
child process (`python -m benchmarks.bench_runner --worker`), then drops it.

- Created → `run.route.selected`: a real `runagents` process; runs are created one at a time
  (`runs.services.run_create`, 40 ms apart, so the runner is idle and must be woken by NOTIFY);
  the latency is `run.route.selected.created_at − run.created_at` (one clock: one machine).
- 200 streaming runs: an in-process runner (`Worker`, `--concurrency 200`, 3 DB threads + 1
  LISTEN) executes 200 stub runs at once, each 100 deltas 50 ms apart (20 deltas/s each, 4,000
  deltas/s in all). Event lag = from the moment a delta is produced (handed to the writer) to the
  commit of the transaction holding it, over every event. Connections: the most backends
  connected to the database (other than the sampler) during the load.
- Cancel: a real `runagents` process streams 20 runs; each is cancelled through
  `runs.services.run_cancel`; the latency is `run.cancelled.created_at − run.cancel_requested.created_at`.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.support import log, run_in_own_database

TITLE = "Runner: wake-up latency, 200 concurrent streaming runs, cancel latency"
ROOT = Path(__file__).resolve().parent.parent
LATENCY_RUNS = 100
STREAMING_RUNS = 200
DELTAS_PER_RUN = 100
DELTA_MS = 50
CANCEL_RUNS = 20


def run(database_url: str) -> str:
    # Every run is one org's: this measures the runner's capacity, so that org may use every slot
    # (fair share between orgs is bench_noisy's subject).
    return run_in_own_database(database_url, module="benchmarks.bench_runner",
                               ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG="0", LOG_LEVEL="WARNING",
                               ARKLOOP_RUNNER_SLOTS_PER_ORG=str(STREAMING_RUNS))


# ---------------------------------------------------------------- the worker (own database)

def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(samples_ms: list[float]) -> str:
    return (f"{statistics.median(samples_ms):.1f} | {pct(samples_ms, 0.99):.1f} | {max(samples_ms):.1f} "
            f"| {len(samples_ms)}")


def principal_and_thread_factory():
    from arkloop.authentication import Principal
    from arkloop.services import membership_ensure
    from threads.services import message_create, thread_create

    principal = Principal(membership=membership_ensure(org_slug="bench", email="alice@bench.test", role="admin"))

    def thread_with(content: str):
        thread = thread_create(principal=principal, title="bench")
        message_create(thread=thread, content=content)
        return thread

    return principal, thread_with


def stub(**script) -> str:
    return "/stub " + json.dumps(script)


class Runner:
    """`manage.py runagents` as a child process."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "manage.py", "runagents", *args], cwd=ROOT,
                                        env={**os.environ, "LOG_LEVEL": "WARNING"})

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark condition not reached in time")
        time.sleep(0.02)


def bench_wakeup(principal, thread_with) -> list[float]:
    from runs.models import Run, RunEvent
    from runs.services import run_create

    runner = Runner("--concurrency", "16")
    time.sleep(4)  # let it start (imports) and LISTEN
    run_ids = []
    for i in range(LATENCY_RUNS):
        run_ids.append(run_create(principal=principal, thread=thread_with(f"wake {i}")).pk)
        time.sleep(0.04)
    wait_for(lambda: Run.objects.filter(pk__in=run_ids, status="completed").count() == len(run_ids))
    runner.stop()
    created = dict(Run.objects.filter(pk__in=run_ids).values_list("id", "created_at"))
    selected = (RunEvent.objects.filter(run_id__in=run_ids, type="run.route.selected")
                .values_list("run_id", "created_at"))
    return [(at - created[run_id]).total_seconds() * 1000 for run_id, at in selected]


def bench_streaming(principal, thread_with) -> tuple[list[float], int, float, int, int]:
    from django.db import connection

    from runs.models import Run
    from runs.runner.worker import Worker
    from runs.services import run_create

    reply = " ".join(f"w{i}" for i in range(DELTAS_PER_RUN))
    script = stub(reply=reply, chunks=DELTAS_PER_RUN, delay_ms=DELTA_MS)
    run_ids = [run_create(principal=principal, thread=thread_with(script)).pk for _ in range(STREAMING_RUNS)]
    connection.close()
    worker = Worker(concurrency=STREAMING_RUNS)
    peak, stop = [0], threading.Event()
    sampler = threading.Thread(target=sample_connections, args=(peak, stop), daemon=True)
    sampler.start()
    started = time.monotonic()
    asyncio.run(worker.run(once=True))
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join()
    done = Run.objects.filter(pk__in=run_ids, status="completed").count()
    lags = [lag * 1000 for lag in worker.writer.lags]
    return lags, peak[0], elapsed, worker.writer.batches, done


def sample_connections(peak: list[int], stop: threading.Event) -> None:
    import psycopg

    from runs.notify import listen_conninfo

    with psycopg.connect(listen_conninfo(application_name="bench-sampler"), autocommit=True) as conn:
        while not stop.is_set():
            count = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND pid <> pg_backend_pid()").fetchone()[0]
            peak[0] = max(peak[0], count)
            time.sleep(0.2)


def bench_cancel(principal, thread_with) -> list[float]:
    from runs.models import Run, RunEvent
    from runs.services import run_cancel, run_create

    runner = Runner("--concurrency", "32")
    time.sleep(4)
    script = stub(reply="x " * 200, chunks=200, delay_ms=DELTA_MS)
    try:
        runs = [run_create(principal=principal, thread=thread_with(script)) for _ in range(CANCEL_RUNS)]
        wait_for(lambda: RunEvent.objects.filter(run__in=runs, type="message.delta").values("run").distinct()
                 .count() == CANCEL_RUNS)
        for run in runs:
            run_cancel(run=run)
            time.sleep(0.1)
        wait_for(lambda: Run.objects.filter(pk__in=[r.pk for r in runs], status="cancelled").count() == CANCEL_RUNS)
    finally:
        runner.stop()  # also when the benchmark fails: an orphan runner would hold the report's pipe open
    stamps: dict = {}
    for run_id, type, at in RunEvent.objects.filter(run__in=runs, type__in=["run.cancel_requested", "run.cancelled"]) \
            .values_list("run_id", "type", "created_at"):
        stamps.setdefault(run_id, {})[type] = at
    return [(s["run.cancelled"] - s["run.cancel_requested"]).total_seconds() * 1000 for s in stamps.values()]


def worker_main() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    principal, thread_with = principal_and_thread_factory()
    log("wake-up latency …")
    wakeup = bench_wakeup(principal, thread_with)
    log("200 streaming runs …")
    lags, peak, elapsed, batches, done = bench_streaming(principal, thread_with)
    log("cancel latency …")
    cancel = bench_cancel(principal, thread_with)
    events = len(lags)
    print("<<<bench>>>")
    print(f"""{__doc__.split(chr(10), 2)[2].strip()}

| measurement (ms) | p50 | p99 | max | samples |
|---|---|---|---|---|
| created → run.route.selected (target p50 ≤ 20) | {summary(wakeup)} |
| delta event lag, 200 runs × 20 deltas/s (target p99 ≤ 100) | {summary(lags)} |
| cancel request → run.cancelled (target p99 ≤ 500) | {summary(cancel)} |

200 streaming runs: {done}/{STREAMING_RUNS} completed in {elapsed:.1f} s
(ideal {DELTAS_PER_RUN * DELTA_MS / 1000:.1f} s);
{events} events committed in {batches} transactions ({events / max(batches, 1):.1f} events per commit);
at most **{peak} database connections** (target ≤ 4).
""")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main()
