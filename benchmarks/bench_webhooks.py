"""Webhooks: terminal event → first attempt received, and a flood of 1,000 completions.

`run()` makes a database of its own on the benchmark's PostgreSQL cluster and measures in a
child process (`python -m benchmarks.bench_webhooks --worker`), then drops it. One real
`runagents` process sends the deliveries; one local HTTP receiver (a threaded server in the
measuring process) answers 200 and stamps each request's arrival.

- Latency: runs are created one at a time (80 ms apart) and executed by the runner (stub, a few
  deltas); latency = receipt of the `run.completed` delivery − the event's `created_at`, which is
  stamped just before its transaction commits (so the figure slightly overstates the delay).
- Flood: 1,000 runs complete within 10 s — each created and completed in one transaction by the
  measuring process (8 threads; no agent loop: this measures the webhook path, not the runner's
  executions), paced at 100 per second. Reported: how many distinct deliveries arrived, how many requests arrived twice
  (duplicates), how many rows ended `delivered`, the latency distribution under that load, and the
  time from the first commit until the last delivery arrived.

`ARKLOOP_BENCH_WEBHOOK_RUNS` and `ARKLOOP_BENCH_WEBHOOK_LATENCY_RUNS` shorten it (a smoke run).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.support import log, run_in_own_database
from tests.fakes.webhook_receiver import WebhookReceiver

TITLE = "Webhooks: terminal event → first attempt received, 1,000 completions in 10 s"
ROOT = Path(__file__).resolve().parent.parent
FLOOD_RUNS = int(os.environ.get("ARKLOOP_BENCH_WEBHOOK_RUNS", "1000"))
FLOOD_SECONDS = 10.0 * FLOOD_RUNS / 1000
LATENCY_RUNS = int(os.environ.get("ARKLOOP_BENCH_WEBHOOK_LATENCY_RUNS", "100"))
FLOOD_PRODUCERS = 8  # threads creating and completing runs, each paced to its share of the rate


def run(database_url: str) -> str:
    return run_in_own_database(database_url, module="benchmarks.bench_webhooks", LOG_LEVEL="WARNING",
                               ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG="0", ARKLOOP_ALLOW_PRIVATE_URLS="true")


# ---------------------------------------------------------------- the worker (own database)

def arrivals(receiver: WebhookReceiver) -> list[tuple[str, str, float]]:
    """(webhook-id, run_id, arrival time) of each delivery the receiver answered (200) so far."""
    return [(r.webhook_id, r.json["data"]["run_id"], r.arrived) for r in list(receiver.received)]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(samples_ms: list[float]) -> str:
    if not samples_ms:
        return "– | – | – | 0"
    return (f"{statistics.median(samples_ms):.1f} | {pct(samples_ms, 0.95):.1f} | {max(samples_ms):.1f} "
            f"| {len(samples_ms)}")


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark condition not reached in time")
        time.sleep(0.05)


def setup(receiver: WebhookReceiver):
    from arkloop.authentication import Principal
    from arkloop.services import membership_ensure
    from webhooks.services import webhook_create

    principal = Principal(membership=membership_ensure(org_slug="bench", email="alice@bench.test", role="admin"))
    webhook, _ = webhook_create(principal=principal, url=receiver.url, events=["run.completed"])
    return principal, webhook


def threads_with_a_message(principal, count: int) -> list:
    from threads.services import message_create, thread_create

    threads = []
    for _ in range(count):
        thread = thread_create(principal=principal, title="bench")
        message_create(thread=thread, content="hello")
        threads.append(thread)
    return threads


def latencies_ms(receiver: WebhookReceiver, run_ids: list) -> list[float]:
    from runs.models import RunEvent

    committed = {str(run_id): at.timestamp() for run_id, at in RunEvent.objects.filter(
        run_id__in=run_ids, type="run.completed").values_list("run_id", "created_at")}
    first: dict[str, float] = {}
    for _, run_id, arrived in arrivals(receiver):
        first.setdefault(run_id, arrived)
    return [(first[run_id] - committed[run_id]) * 1000 for run_id in committed if run_id in first]


def bench_latency(principal, receiver: WebhookReceiver) -> list[float]:
    from runs.services import run_create

    run_ids = []
    for thread in threads_with_a_message(principal, LATENCY_RUNS):
        run_ids.append(str(run_create(principal=principal, thread=thread).pk))
        time.sleep(0.08)
    wanted = set(run_ids)
    wait_for(lambda: wanted <= {run_id for _, run_id, _ in arrivals(receiver)})
    return latencies_ms(receiver, run_ids)


def complete_paced(principal, threads: list, started: float, offset: int, stride: int) -> list[str]:
    """Create and complete the runs of threads[offset::stride], each at its slot of the flood."""
    from django.db import connection, transaction

    from runs.events import event_append
    from runs.services import run_create

    run_ids = []
    try:
        for index in range(offset, len(threads), stride):
            pause = started + index * FLOOD_SECONDS / FLOOD_RUNS - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with transaction.atomic():
                run = run_create(principal=principal, thread=threads[index])
                event_append(run_id=run.pk, type="run.completed", data={})
            run_ids.append(str(run.pk))
    finally:
        connection.close()
    return run_ids


def bench_flood(principal, receiver: WebhookReceiver) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from webhooks.models import WebhookDelivery

    threads = threads_with_a_message(principal, FLOOD_RUNS)
    before = len(arrivals(receiver))
    started, started_wall = time.monotonic(), time.time()
    with ThreadPoolExecutor(FLOOD_PRODUCERS) as pool:
        parts = [pool.submit(complete_paced, principal, threads, started, offset, FLOOD_PRODUCERS)
                 for offset in range(FLOOD_PRODUCERS)]
        run_ids = [run_id for part in parts for run_id in part.result()]
    completed_in = time.monotonic() - started
    wanted = set(run_ids)
    wait_for(lambda: wanted <= {run_id for _, run_id, _ in arrivals(receiver)[before:]})
    got = arrivals(receiver)[before:]
    per_id = Counter(webhook_id for webhook_id, _, _ in got)
    delivered = WebhookDelivery.objects.filter(run_id__in=run_ids, status="delivered")
    settle = time.monotonic() + 5  # the sender marks a delivery after its 200 was read
    while delivered.count() < len(run_ids) and time.monotonic() < settle:
        time.sleep(0.05)
    return {"completed_in": completed_in, "latencies": latencies_ms(receiver, run_ids),
            "distinct": len(per_id), "duplicates": sum(n - 1 for n in per_id.values()),
            "delivered_rows": delivered.count(),
            "span": max(arrived for _, _, arrived in got) - started_wall}


def worker_main() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with WebhookReceiver() as receiver:
        principal, _ = setup(receiver)
        runner = subprocess.Popen([sys.executable, "manage.py", "runagents", "--concurrency", "16"], cwd=ROOT,
                                  env={**os.environ, "LOG_LEVEL": "WARNING"})
        try:
            time.sleep(4)  # imports, LISTEN
            log(f"latency, {LATENCY_RUNS} runs …")
            latency = bench_latency(principal, receiver)
            log(f"flood, {FLOOD_RUNS} completions in {FLOOD_SECONDS:.0f} s …")
            flood = bench_flood(principal, receiver)
        finally:
            runner.terminate()
            runner.wait(timeout=30)
    print("<<<bench>>>")
    print(f"""{__doc__.split(chr(10), 2)[2].split("`ARKLOOP_BENCH")[0].strip()}

| measurement (ms) | p50 | p95 | max | samples |
|---|---|---|---|---|
| run.completed → delivery received, runs one at a time (target p50 ≤ 200, p95 ≤ 1000) | {summary(latency)} |
| the same during the flood | {summary(flood["latencies"])} |

Flood: {FLOOD_RUNS} runs completed in {flood["completed_in"]:.1f} s; **{flood["distinct"]}/{FLOOD_RUNS}
delivered**, {flood["duplicates"]} duplicate requests, {flood["delivered_rows"]} rows `delivered`;
the last delivery arrived {flood["span"]:.1f} s after the first completion.
""")


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main()
