"""The real path, black-box over HTTP: clients create runs while a runner executes them, short runs
end to end, one run followed by 500 and 1,000 streams, 1,000 streams connecting at once — with the
CPU time every server process spent on each.

`run()` makes a database of its own on the benchmark's PostgreSQL cluster (fsync off, see
scripts/pgcluster.py), then a child process (`python -m benchmarks.bench_realpath --worker`)
migrates it, creates an API key with `manage.py create_api_key`, and starts one Daphne
(`-e tcp:…:backlog=2048`, DEBUG off) and one `manage.py runagents` (default flags: concurrency
16, 3 DB threads) — `benchmarks/procs.py`. Two limits are raised for the benchmark, since one
key and one org stand for many clients: `ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG=0` (no org cap) and
`ARKLOOP_MAX_STREAMS_PER_PRINCIPAL=100000` (one key opens 1,000 streams). The client is one
asyncio process (`benchmarks/wire.py`: keep-alive HTTP/1.1 requests, SSE streams read by
protocol callbacks), on the same cores as the servers. Scenarios (`--only NAME`):

- `create`: CLIENTS clients, each looping {POST /v1/threads, POST …/messages "hi", POST …/runs}
  for CREATE_SECONDS while the runner executes every run; then the same three requests one
  endpoint at a time (ENDPOINT_REQUESTS each) for Daphne's CPU per request of each endpoint.
- `short`: SHORT_RUNS runs one after another, each a stub reply of 20 deltas: the time from
  sending `POST …/runs` to receiving `run.completed` (and the first `message.delta`) on the
  run's stream, opened right after the POST answered (a new connection, `after_seq=0`).
- `fanout`: one run followed by N streams (FANOUT_FOLLOWERS), all attached (each has received
  the run's `run.waiting_for_input`: the stub asks first) before its input is posted; then the
  stub streams FANOUT_DELTAS deltas 20 ms apart (~50 events/s). Lag = client receive time −
  the event's `created_at`; the same run without followers gives the runner's own pace.
- `burst`: BURST streams connect at once to a run waiting for input; SYNs dropped are the
  kernel's TcpExt ListenOverflows/ListenDrops before/after, "all attached" is the time until
  every stream has received the run's events so far.

CPU: `psutil` user + system time of Daphne, the runner, the PostgreSQL cluster (all its processes)
and the backends serving each, during each scenario's measured window.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.support import REPORT_MARK, log, quick, run_in_own_database, selected

TITLE = "Real path: runs created while a runner executes them, short runs end to end, fan-out, connect burst"
SCENARIOS = ("create", "short", "fanout", "burst")
ROOT = Path(__file__).resolve().parent.parent
QUICK = quick()
CLIENTS = 16
CREATE_SECONDS = 4.0 if QUICK else 30.0
ENDPOINT_REQUESTS = 96 if QUICK else 800
SHORT_RUNS = 10 if QUICK else 100
FANOUT_FOLLOWERS = (50, 100) if QUICK else (500, 1000)
FANOUT_DELTAS = 50
FANOUT_DELAY_MS = 20
BURST = 100 if QUICK else 1000
CONNECT_BATCH = 100
SERVER_ENV = {
    "DEBUG": "false", "SECRET_KEY": "bench-only-secret-key-bench-only-secret-key", "LOG_LEVEL": "WARNING",
    "ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG": "0", "ARKLOOP_MAX_STREAMS_PER_PRINCIPAL": "100000",
}
TERMINAL = ("completed", "failed", "cancelled")


def run(database_url: str) -> str:
    return run_in_own_database(database_url, module="benchmarks.bench_realpath")


# ---------------------------------------------------------------- helpers


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def stub(**script) -> str:
    import json

    return "/stub " + json.dumps(script)


def words(count: int) -> str:
    return " ".join(f"w{n}" for n in range(count))


def created_at(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


@dataclass
class Context:
    port: int
    key: str
    meter: object  # procs.CpuMeter
    profiler: object  # procs.Profiler
    db: object  # psycopg connection to the benchmark's database (checks only)
    backlog: int = 0  # Daphne's listen backlog as `ss` shows it
    summary: list[tuple[str, str, str, str]] = field(default_factory=list)  # measure, value, target, met
    cpu_rows: list[str] = field(default_factory=list)
    endpoint_cpu: list[float] = field(default_factory=list)  # Daphne CPU s per request, per endpoint
    endpoint_rows: list[str] = field(default_factory=list)
    fanout_cpu: list[float] = field(default_factory=list)  # Daphne CPU s per delivered event, per fan-out

    def api(self):
        from benchmarks.wire import Api

        return Api(self.port, self.key)

    def begin(self, label: str) -> dict:
        """Start a measured window: a CPU snapshot (and py-spy, when profiling)."""
        self.profiler.start(label)
        return self.meter.snapshot()

    def end(self) -> dict:
        after = self.meter.snapshot()
        self.profiler.stop()
        return after

    def measure(self, label: str, before: dict, after: dict, **per: int) -> dict[str, float]:
        """CPU used between two snapshots, added to the CPU table (per unit where `per` says so)."""
        from benchmarks.procs import cpu_used

        used = cpu_used(before, after)
        units = ", ".join(f"{n:,} {unit}" for unit, n in per.items())
        self.cpu_rows.append(
            f"| {label} | {used['wall']:.1f} | {used['daphne']:.2f} | {used['runner']:.2f} | "
            f"{used['postgres']:.2f} ({used['pg daphne']:.2f} / {used['pg runner']:.2f}) | "
            f"{used['client']:.2f} | {used['others']:.2f} | {units} |")
        return used

    def target(self, measure: str, value: str, target: str, met: bool | None) -> None:
        self.summary.append((measure, value, target, "—" if met is None else ("yes" if met else "**no**")))


async def gather_limited(coros, limit: int):
    semaphore = asyncio.Semaphore(limit)

    async def one(coro):
        async with semaphore:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


async def new_thread(api, content: str) -> str:
    status, thread = await api.request("POST", "/v1/threads", {"title": "bench"})
    assert status == 201, (status, thread)
    status, body = await api.request("POST", f"/v1/threads/{thread['id']}/messages", {"content": content})
    assert status == 201, (status, body)
    return thread["id"]


async def create_run(api, thread_id: str) -> str:
    status, body = await api.request("POST", f"/v1/threads/{thread_id}/runs", {})
    assert status == 201, (status, body)
    return body["run_id"]


async def run_events(api, run_id: str) -> list[dict]:
    """Every event of the run, as the stream sends them (`follow=false`)."""
    from benchmarks.wire import parse_events

    status, body = await api.send("GET", f"/v1/runs/{run_id}/events?follow=false")
    assert status == 200, (status, body[:200])
    return parse_events(body)


async def wait_status(api, run_id: str, statuses: tuple[str, ...], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = await api.request("GET", f"/v1/runs/{run_id}")
        if status == 200 and body["status"] in statuses:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"run {run_id} did not reach {statuses} within {timeout:.0f} s")


def check_runs(db, run_ids: list[str] | None) -> dict[str, int]:
    """How the runs ended, from the database: every one completed once, its log gapless, claimed
    once (plus once after each input: a run waiting for input is claimed again when it arrives).
    `None`: every run of the database (all were made by this benchmark)."""
    row = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE r.status = 'completed'), "
        "count(*) FILTER (WHERE r.attempt <> 1 + e.inputs), "
        "count(*) FILTER (WHERE e.n <> e.max_seq OR e.min_seq <> 1 OR e.terminal <> 1 "
        "OR e.last_type <> 'run.completed' OR e.restarted > 0), coalesce(sum(e.n), 0) "
        "FROM runs_run r JOIN LATERAL (SELECT count(*) n, min(seq) min_seq, max(seq) max_seq, "
        "count(*) FILTER (WHERE type IN ('run.completed', 'run.failed', 'run.cancelled')) terminal, "
        "count(*) FILTER (WHERE type = 'run.restarted') restarted, "
        "count(*) FILTER (WHERE type = 'run.input_provided') inputs, "
        "(array_agg(type ORDER BY seq DESC))[1] last_type FROM runs_runevent WHERE run_id = r.id) e ON true "
        "WHERE %s::uuid[] IS NULL OR r.id = ANY(%s::uuid[])", [run_ids, run_ids]).fetchone()
    return {"runs": row[0], "completed": row[1], "claimed_again": row[2], "bad_logs": row[3], "events": row[4]}


def finished_once(checks: dict[str, int], expected: int) -> bool:
    return (checks["runs"] == checks["completed"] == expected and not checks["claimed_again"]
            and not checks["bad_logs"])


def describe_checks(checks: dict[str, int], expected: int) -> str:
    verdict = "every run finished once" if finished_once(checks, expected) else "**NOT every run finished once**"
    return (f"{verdict}: {checks['completed']:,} / {expected:,} completed, {checks['claimed_again']} claimed more "
            f"than once, {checks['bad_logs']} with a gap, a duplicate terminal event or events after it "
            f"({checks['events']:,} events, {checks['events'] / max(1, checks['runs']):.1f} per run)")


# ---------------------------------------------------------------- create: the realistic loop


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"thread": [], "message": [], "run": []})
    statuses: dict[str, int] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)

    def add(self, what: str, status: int, seconds: float) -> None:
        self.latencies[what].append(seconds)
        key = f"{what} {status}"
        self.statuses[key] = self.statuses.get(key, 0) + 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


async def client_loop(api, tally: Tally, until: float) -> None:
    steps = ("thread", "message", "run")
    while time.monotonic() < until:
        thread_id = None
        for what in steps:
            path = {"thread": "/v1/threads", "message": f"/v1/threads/{thread_id}/messages",
                    "run": f"/v1/threads/{thread_id}/runs"}[what]
            body = {"thread": {"title": "bench"}, "message": {"content": "hi"}, "run": {}}[what]
            started = time.perf_counter()
            status, answer = await api.request("POST", path, body)
            tally.add(what, status, time.perf_counter() - started)
            if status != 201:
                break
            if what == "thread":
                thread_id = answer["id"]
            elif what == "run":
                tally.run_ids.append(answer["run_id"])


def wait_finished(db, run_ids: list[str], timeout: float) -> float | None:
    """Poll the database until every run is terminal; the latest completion time (epoch s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, last = db.execute("SELECT count(*) FILTER (WHERE status = ANY(%s)), max(completed_at) FROM runs_run "
                                "WHERE id = ANY(%s::uuid[])", [list(TERMINAL), run_ids]).fetchone()
        if done == len(run_ids):
            return last.timestamp() if last else None
        time.sleep(0.1)
    return None


async def create_loop(ctx: Context, seconds: float, apis: list) -> tuple[Tally, float, float, float | None]:
    """(tally, loop start, loop end, last run's completion), epoch seconds."""
    tally = Tally()
    started = time.time()
    until = time.monotonic() + seconds
    await asyncio.gather(*(client_loop(api, tally, until) for api in apis))
    ended = time.time()
    last = await asyncio.to_thread(wait_finished, ctx.db, tally.run_ids, 120.0)
    return tally, started, ended, last


async def endpoint_phase(ctx: Context, label: str, apis: list, requests: list[tuple[str, dict]]) -> list:
    """`requests` (path, body) spread over the clients; Daphne's CPU per request of this endpoint."""
    queue = list(enumerate(requests))
    answers: list = [None] * len(requests)
    latencies: list[float] = []

    async def worker(api) -> None:
        while queue:
            index, (path, body) = queue.pop()
            started = time.perf_counter()
            status, answer = await api.request("POST", path, body)
            latencies.append(time.perf_counter() - started)
            assert status == 201, (status, answer)
            answers[index] = answer

    before = ctx.begin(f"create {label}")
    await asyncio.gather(*(worker(api) for api in apis))
    used = ctx.measure(f"create: {label} only", before, ctx.end(), requests=len(requests))
    per_request = used["daphne"] / len(requests)
    ctx.endpoint_cpu.append(per_request)
    ctx.endpoint_rows.append(f"| {label} | {len(requests):,} | {ms(per_request)} | {ms(pct(latencies, 0.5))} | "
                             f"{ms(pct(latencies, 0.99))} |")
    return answers


async def scenario_create(ctx: Context) -> str:
    apis = [ctx.api() for _ in range(CLIENTS)]
    log(f"[create] warm-up, then {CLIENTS} clients for {CREATE_SECONDS:.0f} s")
    await create_loop(ctx, 1.0, apis)
    before = ctx.begin("create loop")
    tally, started, ended, last = await create_loop(ctx, CREATE_SECONDS, apis)
    used = ctx.measure("create: the loop (3 requests per run) + runner", before, ctx.end(),
                       requests=tally.requests, runs=len(tally.run_ids))
    checks = await asyncio.to_thread(check_runs, ctx.db, tally.run_ids)
    runs = len(tally.run_ids)
    rate = runs / (last - started) if last else 0.0
    per_request, per_run = used["daphne"] / max(1, tally.requests), used["runner"] / max(1, runs)
    ctx.target("realistic create loop, 16 clients, runs/s (each executed by the runner)",
               f"{rate:.1f}" if last else "runs unfinished after 120 s", "≥ 100", rate >= 100)
    ctx.target("runner CPU per short stub run (create loop)", f"{ms(per_run)} ms", "≤ 5 ms", per_run <= 0.005)

    log("[create] one endpoint at a time")
    count = ENDPOINT_REQUESTS
    threads = await endpoint_phase(ctx, "POST /v1/threads", apis, [("/v1/threads", {"title": "e"})] * count)
    ids = [t["id"] for t in threads]
    await endpoint_phase(ctx, "POST /v1/threads/{id}/messages", apis,
                         [(f"/v1/threads/{i}/messages", {"content": "hi"}) for i in ids])
    phase_runs = await endpoint_phase(ctx, "POST /v1/threads/{id}/runs", apis,
                                      [(f"/v1/threads/{i}/runs", {}) for i in ids])
    await asyncio.to_thread(wait_finished, ctx.db, [r["run_id"] for r in phase_runs], 120.0)
    for api in apis:
        api.close()
    median_cpu = statistics.median(ctx.endpoint_cpu)
    ctx.target("Daphne CPU per API request (thread create, message post, run create; median)",
               f"{ms(median_cpu)} ms (loop mean {ms(per_request)} ms)", "≤ 3 ms", median_cpu <= 0.003)
    lat = tally.latencies
    return "\n".join([
        "### Create loop: clients create runs while the runner executes them",
        "",
        f"{CLIENTS} clients (one keep-alive connection each), each looping {{`POST /v1/threads`, "
        f"`POST /v1/threads/{{id}}/messages` \"hi\", `POST /v1/threads/{{id}}/runs`}} for {CREATE_SECONDS:.0f} s "
        "(after a 1 s warm-up) while one `runagents` executes every run (stub reply \"You said: hi\"). "
        "Runs/s = runs created ÷ (last `completed_at` − loop start): created **and** completed.",
        "",
        "| runs | runs/s (created and completed) | creates/s during the loop | last run completed after the loop "
        "| statuses |",
        "|---|---|---|---|---|",
        f"| {runs:,} | **{rate:.1f}** | {runs / (ended - started):.1f} | "
        f"{(last - ended) if last else float('nan'):.2f} s | "
        f"{', '.join(f'{k}: {v:,}' for k, v in sorted(tally.statuses.items()))} |",
        "",
        f"Latency per request, median / p99 ms: thread {ms(pct(lat['thread'], .5))} / {ms(pct(lat['thread'], .99))}"
        f", message {ms(pct(lat['message'], .5))} / {ms(pct(lat['message'], .99))}, run "
        f"{ms(pct(lat['run'], .5))} / {ms(pct(lat['run'], .99))}. Daphne CPU per request (mean over the loop) "
        f"{ms(per_request)} ms; runner CPU per run {ms(per_run)} ms; PostgreSQL CPU per run "
        f"{ms(used['postgres'] / max(1, runs))} ms.",
        "",
        f"Nothing lost: {describe_checks(checks, runs)}.",
        "",
        f"One endpoint at a time ({CLIENTS} clients, {count:,} requests each; the runs of the last one are "
        "executed meanwhile): Daphne CPU per request is the process's CPU time over the phase ÷ requests.",
        "",
        "| endpoint | requests | Daphne CPU ms / request | latency median ms | p99 ms |",
        "|---|---|---|---|---|",
        *ctx.endpoint_rows,
        "",
        "Leaves out: TLS and a proxy in front; more than one Daphne or runner process; providers other than "
        "the stub (no model latency); `Idempotency-Key` headers; other tenants' load. The client shares "
        "the 2 cores with the servers (its CPU is in the table below).",
    ])


# ---------------------------------------------------------------- short: one run end to end


async def scenario_short(ctx: Context) -> str:
    from benchmarks.wire import Follower

    api = ctx.api()
    script = stub(reply=words(20), chunks=20)
    log(f"[short] {SHORT_RUNS} runs of 20 deltas, one after another")
    threads = [await new_thread(api, script) for _ in range(SHORT_RUNS + 3)]
    completed, first_delta, problems, run_ids = [], [], [], []
    before = None
    for n, thread_id in enumerate(threads):
        if n == 3:  # three warm-up runs
            before = ctx.begin("short runs")
        await asyncio.sleep(0.05)  # the runner is idle and must be woken, as for a lone user
        started = time.time()
        run_id = await create_run(api, thread_id)
        follower = await Follower.open(ctx.port, run_id, ctx.key)
        await asyncio.wait_for(asyncio.shield(follower.done), 30)
        if n < 3:
            continue
        run_ids.append(run_id)
        if not follower.complete or follower.seqs != list(range(1, len(follower.seqs) + 1)):
            problems.append(f"{run_id}: {follower.error or follower.types[-1:]}")
            continue
        completed.append(follower.times[follower.types.index(b"run.completed")] - started)
        first_delta.append(follower.times[follower.types.index(b"message.delta")] - started)
    used = ctx.measure("short: runs one after another", before, ctx.end(), runs=SHORT_RUNS)
    api.close()
    checks = await asyncio.to_thread(check_runs, ctx.db, run_ids)
    p50, p99, first = pct(completed, 0.5), pct(completed, 0.99), pct(first_delta, 0.5)
    ctx.target("short run (20 deltas): `POST …/runs` → `run.completed` received, p50 / p99",
               f"{ms(p50)} / {ms(p99)} ms", "≤ 30 / 60 ms", p50 <= 0.030 and p99 <= 0.060)
    ctx.target("same, first `message.delta` received, p50", f"{ms(first)} ms", "≤ 20 ms", first <= 0.020)
    return "\n".join([
        "### Short run end to end",
        "",
        f"{SHORT_RUNS} runs one after another (after 3 warm-up runs), 50 ms apart so the runner is idle and "
        "woken by NOTIFY; each a stub reply of 20 deltas (`/stub {\"reply\": …, \"chunks\": 20}`). Timed from "
        "sending `POST /v1/threads/{id}/runs` (keep-alive connection) to receiving the event on the run's "
        "stream, opened on a new connection right after the POST answered (`after_seq=0`, so nothing is missed).",
        "",
        "| measure (ms) | p50 | p99 | max | runs |",
        "|---|---|---|---|---|",
        f"| `POST …/runs` → `run.completed` received | {ms(p50)} | {ms(p99)} | {ms(max(completed, default=0))} "
        f"| {len(completed)} |",
        f"| `POST …/runs` → first `message.delta` received | {ms(first)} | {ms(pct(first_delta, 0.99))} | "
        f"{ms(max(first_delta, default=0))} | {len(first_delta)} |",
        "",
        f"Per run: Daphne CPU {ms(used['daphne'] / SHORT_RUNS)} ms (the POST and a stream of "
        f"{checks['events'] / max(1, checks['runs']):.0f} events), runner CPU {ms(used['runner'] / SHORT_RUNS)} ms, "
        f"PostgreSQL CPU {ms(used['postgres'] / SHORT_RUNS)} ms.",
        "",
        f"Nothing lost: {describe_checks(checks, SHORT_RUNS)}; streams complete and gapless: "
        f"{len(completed)} / {SHORT_RUNS}{' — ' + '; '.join(problems[:3]) if problems else ''}.",
        "",
        "Leaves out: concurrent load (one run at a time), model latency, the thread and message creation "
        "(made beforehand), a client that opens the stream before the run exists (impossible: it needs the id).",
    ])


# ---------------------------------------------------------------- fan-out and burst


async def waiting_run(ctx: Context, api, *, deltas: int, delay_ms: int) -> tuple[str, int]:
    """A run whose stub asks a question first: it waits for input, so streams can attach before any
    delta. Returns (run id, seq of its `run.waiting_for_input`)."""
    thread_id = await new_thread(api, stub(ask="ready?", reply=words(deltas), chunks=deltas, delay_ms=delay_ms))
    run_id = await create_run(api, thread_id)
    await wait_status(api, run_id, ("waiting_for_input",))
    events = await run_events(api, run_id)
    assert events[-1]["type"] == "run.waiting_for_input", events[-1]
    return run_id, events[-1]["seq"]


async def attach(ctx: Context, run_id: str, count: int, attach_seq: int, *, batch: int) -> list:
    """`count` streams of the run, opened `batch` at a time (each batch attached before the next)."""
    from benchmarks.wire import Follower

    followers = []
    for start in range(0, count, batch):
        opened = await asyncio.gather(*(Follower.open(ctx.port, run_id, ctx.key, attach_seq=attach_seq)
                                        for _ in range(min(batch, count - start))))
        await asyncio.wait([f.attached for f in opened], timeout=120)
        followers += opened
    return followers


def pace(events: list[dict]) -> dict[str, float]:
    """The runner's own pace: the deltas' `created_at` span and intervals."""
    stamps = [created_at(e["created_at"]) for e in events if e["type"] == "message.delta"]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return {"span": stamps[-1] - stamps[0], "gap p50": pct(gaps, 0.5), "gap p99": pct(gaps, 0.99),
            "rate": (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")}


async def provide_input_and_wait(ctx: Context, api, run_id: str, followers: list) -> None:
    status, body = await api.request("POST", f"/v1/runs/{run_id}/input", {"content": "go"})
    assert status == 200, (status, body)
    if followers:
        await asyncio.wait([f.done for f in followers], timeout=120)
    else:
        await wait_status(api, run_id, TERMINAL)


def stream_verdict(followers: list, events: list[dict]) -> tuple[int, int, list[str]]:
    """(complete and gapless streams, deliveries, first few problems): each stream must hold every
    event of the run exactly once, in order, end with the terminal event and be closed by the server."""
    wanted = [e["seq"] for e in events]
    good, deliveries, problems = 0, 0, []
    for follower in followers:
        deliveries += len(follower.seqs)
        if follower.complete and follower.seqs == wanted:
            good += 1
        elif len(problems) < 3:
            problems.append(f"{follower.error or 'incomplete'} after {follower.seqs[-1:]} of {wanted[-1]}")
    return good, deliveries, problems


async def fanout_one(ctx: Context, api, count: int, baseline: dict[str, float]) -> tuple[str, list[str]]:
    log(f"[fanout] {count} followers")
    run_id, wait_seq = await waiting_run(ctx, api, deltas=FANOUT_DELTAS, delay_ms=FANOUT_DELAY_MS)
    followers = await attach(ctx, run_id, count, wait_seq, batch=CONNECT_BATCH)
    attached = sum(f.attached.done() and not f.attached.exception() for f in followers)
    before = ctx.begin(f"fanout {count}")
    await provide_input_and_wait(ctx, api, run_id, followers)
    after = ctx.end()
    events = await run_events(api, run_id)
    new = {e["seq"]: created_at(e["created_at"]) for e in events if e["seq"] > wait_seq}
    delivered = sum(1 for f in followers for seq in f.seqs if seq in new)
    used = ctx.measure(f"fanout: {count} followers, after attaching", before, after,
                       deliveries=delivered)
    lags = [t - new[seq] for f in followers for seq, t in zip(f.seqs, f.times, strict=True) if seq in new]
    types = {e["seq"]: e["type"] for e in events}
    first_delta = min(t for seq, t in new.items() if types[seq] == "message.delta")
    last_terminal = max((f.times[-1] for f in followers if f.times), default=float("nan"))
    good, deliveries, problems = stream_verdict(followers, events)
    own = pace(events)
    per_event = used["daphne"] / max(1, delivered)
    p50, p99 = pct(lags, 0.5), pct(lags, 0.99)
    all_terminal = last_terminal - first_delta
    ctx.fanout_cpu.append(per_event)
    if count == FANOUT_FOLLOWERS[0]:
        ctx.target(f"fan-out: {count} followers of one run at ~50 events/s, delivery lag p99",
                   f"{ms(p99)} ms (runner's span {ms(own['span'])} ms vs {ms(baseline['span'])} alone)",
                   "≤ 100 ms, the runner's pace unaffected (span ≤ 110% of alone)",
                   p99 <= 0.100 and own["span"] <= 1.1 * baseline["span"])
    else:
        ctx.target(f"fan-out: {count} followers, lag p99; all followers have the terminal event after the "
                   "first delta", f"{ms(p99)} ms; {all_terminal:.2f} s", "≤ 250 ms; ≤ 1.2 s",
                   p99 <= 0.250 and all_terminal <= 1.2)
    return (f"| {count:,} | {attached:,} | {ms(p50)} | {ms(p99)} | {ms(max(lags, default=0))} | {all_terminal:.2f} s "
            f"| {ms(own['span'])} ({own['rate']:.0f}/s, gap p99 {ms(own['gap p99'])}) | {1e6 * per_event:.0f} | "
            f"{good:,} / {count:,} | {deliveries:,} |"), problems


async def scenario_fanout(ctx: Context) -> str:
    api = ctx.api()
    log("[fanout] the same run without followers (the runner's own pace)")
    run_id, _ = await waiting_run(ctx, api, deltas=FANOUT_DELTAS, delay_ms=FANOUT_DELAY_MS)
    await provide_input_and_wait(ctx, api, run_id, [])
    baseline = pace(await run_events(api, run_id))
    rows, problems = [], []
    for count in FANOUT_FOLLOWERS:
        row, found = await fanout_one(ctx, api, count, baseline)
        rows.append(row)
        problems += found
    api.close()
    worst = max(ctx.fanout_cpu)
    ctx.target("Daphne CPU per delivered SSE event (fan-out, connects excluded)", f"{1e6 * worst:.0f} µs (worst)",
               "≤ 25 µs", worst <= 25e-6)
    return "\n".join([
        "### Fan-out: one run, many followers",
        "",
        f"The run's stub asks a question first, so every follower attaches (has received "
        f"`run.waiting_for_input`, opened {CONNECT_BATCH} at a time) before any delta exists; then its input is "
        f"posted and it streams {FANOUT_DELTAS} deltas {FANOUT_DELAY_MS} ms apart, then `llm.turn.completed` "
        "and `run.completed`. Lag = client receive time − the event's `created_at` (one clock: one machine), over "
        "every event after the input of every follower. \"All terminal\" = the last follower's receipt of "
        "`run.completed` − the first delta's `created_at`. The runner's pace = the span of its deltas' "
        f"`created_at`; the same run without followers: {ms(baseline['span'])} ms ({baseline['rate']:.0f}/s, "
        f"gap p99 {ms(baseline['gap p99'])} ms). Daphne CPU per delivered event = its CPU from posting the input "
        "to the last stream's close (the input POST and the closes included, the connects excluded) ÷ events "
        "delivered in that window.",
        "",
        "| followers | attached before the first delta | lag p50 ms | p99 ms | max ms | all terminal after the "
        "first delta | runner's delta span ms | Daphne CPU µs / delivered event | complete, gapless streams "
        "| events delivered (replays included) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        *([f"\nStream problems (first few): {problems[:3]}"] if problems else []),
        "",
        "Leaves out: followers spread over several runs (see the live event stream section), slow or "
        "stalled readers, reconnects with `Last-Event-ID`, more than one Daphne process. One client "
        "process reads every stream, on the same cores as Daphne.",
    ])


async def scenario_burst(ctx: Context) -> str:
    from benchmarks.procs import net_counters
    from benchmarks.wire import Follower

    api = ctx.api()
    log(f"[burst] {BURST} connects at once")
    run_id, wait_seq = await waiting_run(ctx, api, deltas=5, delay_ms=0)
    counters = net_counters()
    before = ctx.begin("burst")
    started = time.time()
    opened = await asyncio.gather(*(Follower.open(ctx.port, run_id, ctx.key, attach_seq=wait_seq)
                                    for _ in range(BURST)), return_exceptions=True)
    followers = [f for f in opened if not isinstance(f, BaseException)]
    await asyncio.wait([f.attached for f in followers], timeout=120)
    attached = [f.attached.result() - started for f in followers if f.attached.done() and not f.attached.exception()]
    used = ctx.measure(f"burst: {BURST:,} connects until all attached", before, ctx.end(),
                       connects=BURST)
    dropped = {name: value - counters[name] for name, value in net_counters().items()}
    await provide_input_and_wait(ctx, api, run_id, followers)
    good, _, problems = stream_verdict(followers, await run_events(api, run_id))
    api.close()
    all_attached = max(attached) if len(attached) == BURST else float("nan")
    ctx.target(f"{BURST:,} followers connecting at once: SYNs dropped; all attached",
               f"{dropped['ListenOverflows']:,} / {dropped['ListenDrops']:,}; {all_attached:.2f} s", "0; ≤ 2 s",
               dropped["ListenDrops"] == 0 and all_attached <= 2.0)
    failed = [repr(f) for f in opened if isinstance(f, BaseException)][:3]
    return "\n".join([
        "### Burst: many streams connect at once",
        "",
        f"{BURST:,} `GET /v1/runs/{{id}}/events` opened at the same instant (one `connect()` each, no batching) "
        "on a run waiting for input; attached = the stream has delivered the run's events so far. Dropped SYNs: "
        "the kernel's TcpExt counters over the burst (the whole network namespace: another program's listener "
        f"would count too). Daphne's listen backlog (ss Send-Q): {ctx.backlog}.",
        "",
        "| connects | ListenOverflows / ListenDrops | attached p50 s | all attached s | Daphne CPU ms / connect "
        "| complete streams after the input |",
        "|---|---|---|---|---|---|",
        f"| {BURST:,} | {dropped['ListenOverflows']:,} / {dropped['ListenDrops']:,} | {pct(attached, 0.5):.2f} | "
        f"{all_attached:.2f} | {ms(used['daphne'] / BURST)} | {good:,} / {BURST:,} |",
        *([f"\nConnect failures (first few): {failed}"] if failed else []),
        *([f"\nStream problems (first few): {problems}"] if problems else []),
        "",
        "Leaves out: connects from many machines (one client, loopback), TLS handshakes.",
    ])


# ---------------------------------------------------------------- the worker


def prepare(database_url: str) -> str:
    """Migrate the benchmark's database; returns a new admin API key."""
    env = {**os.environ, **SERVER_ENV, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "arkloop.settings"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    created = subprocess.run([*manage, "create_api_key", "--org", "bench", "--email", "bench@bench.test"],
                             cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return created.stdout.strip().splitlines()[-1]


def report(ctx: Context, sections: list[str], load: tuple[float, float], checks: dict[str, int]) -> str:
    return "\n".join([
        f"One Daphne (listen backlog {ctx.backlog}) + one `runagents` on PostgreSQL (fsync off), DEBUG off, "
        "`ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG=0`, `ARKLOOP_MAX_STREAMS_PER_PRINCIPAL=100000`; one asyncio "
        f"client process. Load average (1 min) at the start / end: {load[0]:.1f} / {load[1]:.1f} "
        f"({os.cpu_count()} cores).",
        "",
        "| measure | this run | target | met |",
        "|---|---|---|---|",
        *[f"| {m} | {v} | {t} | {ok} |" for m, v, t, ok in ctx.summary],
        "",
        f"Every run this section made (warm-ups included), from the database at the end: "
        f"{describe_checks(checks, checks['runs'])}.",
        "",
        "\n\n".join(sections),
        "",
        "### CPU time per process (psutil: user + system, all threads)",
        "",
        "Seconds of CPU during each measured window. PostgreSQL: every process of the cluster (backends that "
        "exited included); in parentheses the backends serving Daphne / the runner (a backend that exited "
        "within the window is missed there). Others: the rest of the machine (other programs on the shared "
        "cores).",
        "",
        "| window | wall s | Daphne | runner | PostgreSQL (Daphne's / runner's) | client | others | units |",
        "|---|---|---|---|---|---|---|---|",
        *ctx.cpu_rows,
    ])


async def measure(database_url: str, key: str, servers) -> str:
    import psycopg

    from benchmarks.procs import CpuMeter, Profiler

    scenarios = {"create": scenario_create, "short": scenario_short, "fanout": scenario_fanout,
                 "burst": scenario_burst}
    meter = CpuMeter(servers, database_url)
    load_start = os.getloadavg()[0]
    with psycopg.connect(database_url, autocommit=True, application_name="bench-check") as db:
        ctx = Context(port=servers.port, key=key, meter=meter, profiler=Profiler(servers), db=db,
                      backlog=servers.backlog)
        sections = []
        for name in selected(SCENARIOS):
            sections.append(await scenarios[name](ctx))
            servers.check_alive()
        checks = check_runs(db, None)
    meter.close()
    return report(ctx, sections, (load_start, os.getloadavg()[0]), checks)


def worker() -> None:
    import resource

    from benchmarks.procs import Servers

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))  # 1,000+ sockets
    database_url = os.environ["DATABASE_URL"]
    key = prepare(database_url)
    with Servers(database_url=database_url, env=SERVER_ENV) as servers:
        text = asyncio.run(measure(database_url, key, servers))
    print(REPORT_MARK + text)


if __name__ == "__main__" and "--worker" in sys.argv:
    sys.path.insert(0, str(ROOT))
    worker()
