"""Noisy neighbour: two orgs flood one runner with long runs while a third org runs short ones.

`run()` makes a database of its own on the benchmark's PostgreSQL cluster and measures in a
child process (`python -m benchmarks.bench_noisy --worker`), then drops it.

- A real `runagents --concurrency 16` process with the default fair share (8 runs per org).
- Orgs `flood-a` and `flood-b` keep 50 long runs each active (50 to 200 deltas 100 ms apart:
  5 to 20 s each, so slots free at different times): topped up every half second.
- Org `hostile` starts a poison run every 5 s: its reply holds NUL and lone surrogates and it
  streams 50 deltas, so poison deltas share the writer's batches with everyone's.
- Org `small` creates one short run (`hello`) every second. Its latency ends at
  `run.route.selected.created_at` (the run was claimed: one clock, one machine) and starts at the
  run's creation, or at the moment a slot freed: the floods hold all 16 slots, so a small run
  waits for a run to finish whatever the claim order; fair share decides that it gets that slot.
- Restarts: `run.restarted` events of every run that is not a poison run (target 0).
- Slots per org: the most runs of one org holding a live lease at once, sampled every 0.2 s
  (at most 8 with the defaults).

`ARKLOOP_BENCH_NOISY_SECONDS` shortens the measured period (default 30).
"""
from __future__ import annotations

import bisect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.support import log, run_in_own_database

TITLE = "Noisy neighbour: a small org's runs while two orgs flood the runner"
ROOT = Path(__file__).resolve().parent.parent
SECONDS = int(os.environ.get("ARKLOOP_BENCH_NOISY_SECONDS", "30"))
CONCURRENCY = 16
FLOOD_ACTIVE = 50
POISON = {"reply": "bad \u0000 byte, lone \ud800 " * 10, "chunks": 50, "delay_ms": 100}
POISON_EVERY = 5.0


def run(database_url: str) -> str:
    return run_in_own_database(database_url, module="benchmarks.bench_noisy",
                               ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG="0", LOG_LEVEL="WARNING")


# ---------------------------------------------------------------- the worker (own database)

def stub(script: dict) -> str:
    return "/stub " + json.dumps(script)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Org:
    """An org's member and a way to start a run on a new thread of theirs."""

    def __init__(self, slug: str) -> None:
        from arkloop.authentication import Principal
        from arkloop.services import membership_ensure

        self.slug = slug
        self.principal = Principal(membership=membership_ensure(org_slug=slug, email=f"user@{slug}.test",
                                                                role="admin"))

    def start(self, content: str):
        from runs.services import run_create
        from threads.services import message_create, thread_create

        thread = thread_create(principal=self.principal, title="noisy")
        message_create(thread=thread, content=content)
        return run_create(principal=self.principal, thread=thread)


def long_script(index: int) -> str:
    deltas = 50 + index * 37 % 151  # 50 to 200, spread
    return stub({"reply": " ".join(f"w{i}" for i in range(deltas)), "chunks": deltas, "delay_ms": 100})


def top_up(org: Org, started: list[int]) -> None:
    from runs.models import ACTIVE_STATUSES, Run

    active = Run.objects.filter(org_id=org.principal.org_id, status__in=ACTIVE_STATUSES).count()
    for _ in range(FLOOD_ACTIVE - active):
        org.start(long_script(started[0]))
        started[0] += 1


def most_per_org(peak: dict[str, int]) -> None:
    from django.db.models import Count
    from django.utils import timezone

    from runs.models import Run

    held = (Run.objects.filter(status="running", lease_expires_at__gt=timezone.now()).exclude(lease_owner="")
            .values("org__slug").annotate(n=Count("id")))
    for row in held:
        peak[row["org__slug"]] = max(peak.get(row["org__slug"], 0), row["n"])


def measure() -> dict:
    floods, small, hostile, count = [Org("flood-a"), Org("flood-b")], Org("small"), Org("hostile"), [0]
    for org in floods:
        top_up(org, count)
    runner = subprocess.Popen([sys.executable, "manage.py", "runagents", "--concurrency", str(CONCURRENCY)],
                              cwd=ROOT, env={**os.environ, "LOG_LEVEL": "WARNING"})
    small_runs, poison_runs, peak = [], [], {}
    try:
        time.sleep(4)  # imports, LISTEN, and the first claims: the floods hold every slot
        started = time.monotonic()
        next_small = next_poison = next_top_up = next_sample = started
        while (now := time.monotonic()) < started + SECONDS:
            if now >= next_small:
                small_runs.append(small.start("hello").pk)
                next_small += 1.0
            if now >= next_poison:
                poison_runs.append(hostile.start(stub(POISON)).pk)
                next_poison += POISON_EVERY
            if now >= next_top_up:
                for org in floods:
                    top_up(org, count)
                next_top_up += 0.5
            if now >= next_sample:
                most_per_org(peak)
                next_sample += 0.2
            time.sleep(0.02)
        time.sleep(3)  # the last small runs get their slot
    finally:
        runner.terminate()
        runner.wait(timeout=60)
    return {"small": small_runs, "poison": poison_runs, "peak": peak}


def report(measured: dict) -> str:
    from runs.models import Run, RunEvent

    small, poison = measured["small"], measured["poison"]
    created = dict(Run.objects.filter(pk__in=small).values_list("id", "created_at"))
    selected = dict(RunEvent.objects.filter(run_id__in=small, type="run.route.selected")
                    .values_list("run_id", "created_at"))
    waits = [(selected[r] - created[r]).total_seconds() * 1000 for r in small if r in selected]
    freed = sorted(stamp for stamps in Run.objects.values_list("completed_at", "failed_at", "cancelled_at")
                   for stamp in stamps if stamp is not None)
    after_free = [slot_wait(created[r], selected[r], freed) for r in small if r in selected]
    unclaimed = len(small) - len(waits)
    restarts = RunEvent.objects.filter(type="run.restarted").exclude(run_id__in=poison).count()
    poisoned = Run.objects.filter(pk__in=poison)
    outcome = {status: poisoned.filter(status=status).count() for status in ("completed", "failed")}
    peak = ", ".join(f"{slug} {n}" for slug, n in sorted(measured["peak"].items()))
    rows, freed_rows = distribution(waits), distribution(after_free)
    worst = max((r for r in small if r in selected), key=lambda r: slot_wait(created[r], selected[r], freed),
                default=None)
    taken = claims_while_waiting(created[worst], selected[worst]) if worst is not None else "—"
    return f"""{__doc__.split(chr(10), 2)[2].strip()}

| small org → run.route.selected (ms) | p50 | p99 | max | runs |
|---|---|---|---|---|
| from the run's creation (target: never above the run timeout, 900 s) {rows}
| from the moment a slot freed (target p99 ≤ 1000) {freed_rows}

"A slot freed": the first run to finish (any org's) at or after the small run's creation; a small
run claimed before that counts from its creation (a slot was free already).

Small org runs not claimed by the end: {unclaimed}.
While the small run that waited longest waited, the runner claimed: {taken}.
`run.restarted` of runs that are not poison runs: **{restarts}** (target 0).
Poison runs: {len(poison)} started, {outcome['completed']} completed (text cleaned), {outcome['failed']} failed.
Most runs of one org executing at once: {peak or '—'} (at most {CONCURRENCY // 2}).
Measured for {SECONDS} s.
"""


def slot_wait(created, selected, freed: list) -> float:
    """ms from the later of `created` and the first finish at or after it (in sorted `freed`) to
    `selected`; from `created` when the run was claimed before that finish."""
    index = bisect.bisect_left(freed, created)
    start = freed[index] if index < len(freed) and freed[index] < selected else created
    return (selected - start).total_seconds() * 1000


def claims_while_waiting(created, selected) -> str:
    """Which orgs' runs were claimed (first claim: `run.route.selected`) between a small run's
    creation and its own claim, with how many of them were created before it."""
    from runs.models import RunEvent

    rows = (RunEvent.objects.filter(type="run.route.selected", created_at__gte=created, created_at__lt=selected)
            .values_list("run__org__slug", "run__created_at"))
    counts: dict[str, list[int]] = {}
    for slug, run_created in rows:
        older, total = counts.setdefault(slug, [0, 0])
        counts[slug] = [older + (run_created < created), total + 1]
    return ", ".join(f"{slug} {total} ({older} created before it)" for slug, (older, total) in sorted(counts.items())) \
        or "nothing"


def distribution(samples: list[float]) -> str:
    if not samples:
        return "| — | — | — | 0 |"
    return f"| {statistics.median(samples):.0f} | {pct(samples, 0.99):.0f} | {max(samples):.0f} | {len(samples)} |"


def worker_main() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    log(f"noisy neighbour for {SECONDS} s …")
    measured = measure()
    print("<<<bench>>>")
    print(report(measured))


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker_main()
