"""The live event stream: 1,000 concurrent SSE followers on one Daphne process.

`run()` makes a database of its own on the benchmark's PostgreSQL cluster and measures in a child
process (`python -m benchmarks.bench_stream --worker`). Two scenarios, each with FOLLOWERS
followers connected at once to one Daphne (heartbeat 1 s):

- spread: the followers watch RUNS runs (FOLLOWERS / RUNS each);
- hot: every follower watches the same run (the worst fan-out).

For each scenario:
- RSS per idle stream: Daphne's VmRSS with every follower connected and idle, minus its VmRSS
  after a warm-up, divided by the number of followers;
- database work of idle streams: new PostgreSQL sessions (`pg_stat_database.sessions`; stream
  queries run on 4 long-lived `stream_db` threads, arkloop/db_threads.py) and transactions
  during an idle window in which each follower receives several heartbeats;
- delivery: a writer in another process appends events with `event_append` at a fixed rate, then
  the terminal events; every follower must receive every event exactly once, in order, and be
  closed after the terminal event;
- latency: the writer's clock right after COMMIT to the follower's clock when the event's `data:`
  line arrived (same machine, same clock). The client is one asyncio process reading raw HTTP/1.0
  sockets; client, writer, Daphne and PostgreSQL share the machine's cores, so the numbers
  include their contention.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

TITLE = "Live event stream: 1,000 SSE followers on one Daphne"
ROOT = Path(__file__).resolve().parent.parent
FOLLOWERS = int(os.environ.get("BENCH_STREAM_FOLLOWERS", 1000))
RUNS = 100
SPREAD_EVENTS_PER_RUN = 20
SPREAD_RATE = 200  # events per second, over all runs
HOT_EVENTS = 25
HOT_RATE = 5
IDLE_WINDOW_SECONDS = 5.0
# Before the idle window: the connects' replays are done, and PostgreSQL has counted them. A backend
# reports its transactions to pg_stat_database at most once a second while busy and within 10 s once
# idle (PostgreSQL 15's PGSTAT_IDLE_INTERVAL), so the stream threads' replay reads could land in a
# window that starts sooner: 416 or 2,000 "idle" transactions where the statement log showed none.
SETTLE_SECONDS = 11.0
CONNECT_BATCH = 50


def run(database_url: str) -> str:
    if not database_url.startswith("postgres"):
        return "Skipped: needs PostgreSQL (`make bench` provides one)."
    import psycopg

    name = "bench_stream"
    own_url = urlunparse(urlparse(database_url)._replace(path=f"/{name}"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        env = {**os.environ, "DATABASE_URL": own_url, "DJANGO_SETTINGS_MODULE": "arkloop.settings"}
        done = subprocess.run([sys.executable, "-m", "benchmarks.bench_stream", "--worker"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, check=True, text=True)
        return done.stdout.split("<<<bench>>>\n", 1)[-1]
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the client (raw HTTP/1.0 SSE)

@dataclass
class Follower:
    run_id: str
    seqs: list[int] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    pings: int = 0
    closed: bool = False
    error: str = ""

    async def connect(self, port: int, key: str) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        self.writer.write(f"GET /v1/runs/{self.run_id}/events?after_seq=1 HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {key}\r\n\r\n".encode())
        status = await self.reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream answered {status!r}")
        while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            pass

    async def read(self) -> None:
        """Read frames until the server closes the stream (after the terminal event)."""
        try:
            seq = 0
            while line := await self.reader.readline():
                if line.startswith(b"id: "):
                    seq = int(line[4:])
                elif line.startswith(b"data: "):
                    self.received_at.append(time.time())
                    self.seqs.append(seq)
                elif line.startswith(b": ping"):
                    self.pings += 1
            self.closed = True
        except Exception as exc:  # reported in the results, not raised
            self.error = repr(exc)
        finally:
            self.writer.close()


async def connect_all(followers: list[Follower], port: int, key: str) -> list[asyncio.Task]:
    readers = []
    for start in range(0, len(followers), CONNECT_BATCH):
        batch = followers[start:start + CONNECT_BATCH]
        await asyncio.gather(*(f.connect(port, key) for f in batch))
        readers += [asyncio.create_task(f.read()) for f in batch]
    return readers


# ---------------------------------------------------------------- measurements

def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def db_counters(probe) -> tuple[int, int]:
    """(sessions opened, transactions) of this database so far, as PostgreSQL's statistics say."""
    probe.execute("SELECT pg_stat_clear_snapshot()")
    row = probe.execute("SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database "
                        "WHERE datname = current_database()").fetchone()
    return row[0], row[1]


def other_connections(probe) -> int:
    return probe.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND pid <> pg_backend_pid()").fetchone()[0]


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


@dataclass
class Result:
    name: str
    followers: int
    runs: int
    events: int
    rss_per_stream_kb: float
    idle_sessions: int
    idle_xacts: int
    idle_pings: int
    idle_connections: int
    complete: int
    deliveries: int
    expected: int
    latencies_ms: list[float]
    errors: list[str]


async def scenario(name: str, *, port: int, pid: int, key: str, run_ids: list[str], events_per_run: int,
                   rate: float, probe) -> Result:
    log(f"[{name}] warming up")
    warm = [Follower(run_ids[i % len(run_ids)]) for i in range(20)]
    for task in await connect_all(warm, port, key):
        task.cancel()
    for follower in warm:
        follower.writer.close()
    await asyncio.sleep(1.0)
    baseline = rss_kb(pid)
    log(f"[{name}] connecting {FOLLOWERS} followers")
    followers = [Follower(run_ids[i % len(run_ids)]) for i in range(FOLLOWERS)]
    readers = await connect_all(followers, port, key)
    await asyncio.sleep(SETTLE_SECONDS)
    connected_rss = rss_kb(pid)
    pings_before = sum(f.pings for f in followers)
    sessions_before, xacts_before = db_counters(probe)
    await asyncio.sleep(IDLE_WINDOW_SECONDS)
    sessions_after, xacts_after = db_counters(probe)
    idle_pings = sum(f.pings for f in followers) - pings_before
    idle_connections = other_connections(probe)
    log(f"[{name}] writing {events_per_run} events to each of {len(run_ids)} runs")
    commits = await asyncio.to_thread(write_events, run_ids, events_per_run, rate)
    await asyncio.wait(readers, timeout=120)
    return summarize(name, followers, run_ids, events_per_run, commits,
                     rss_per_stream_kb=(connected_rss - baseline) / FOLLOWERS,
                     idle=(sessions_after - sessions_before, xacts_after - xacts_before, idle_pings,
                           idle_connections))


def summarize(name: str, followers: list[Follower], run_ids: list[str], events_per_run: int,
              commits: dict[str, dict[int, float]], *, rss_per_stream_kb: float, idle: tuple) -> Result:
    wanted = list(range(2, events_per_run + 3))  # after_seq=1: the deltas, then the terminal event
    latencies, complete, deliveries = [], 0, 0
    for follower in followers:
        deliveries += len(follower.seqs)
        complete += follower.seqs == wanted and follower.closed
        stamps = commits[follower.run_id]
        latencies += [(at - stamps[seq]) * 1000 for seq, at in zip(follower.seqs, follower.received_at, strict=True)
                      if seq in stamps]
    if os.environ.get("BENCH_STREAM_DEBUG"):
        t0 = min(t for stamps in commits.values() for t in stamps.values())
        worst = sorted(((at - commits[f.run_id][seq]) * 1000, round(commits[f.run_id][seq] - t0, 3), seq)
                       for f in followers for seq, at in zip(f.seqs, f.received_at, strict=True))[-15:]
        log(f"[{name}] worst (ms, commit offset s, seq): {worst}")
    return Result(name=name, followers=len(followers), runs=len(run_ids), events=len(run_ids) * len(wanted),
                  rss_per_stream_kb=rss_per_stream_kb, idle_sessions=idle[0], idle_xacts=idle[1],
                  idle_pings=idle[2], idle_connections=idle[3], complete=complete, deliveries=deliveries,
                  expected=len(followers) * len(wanted), latencies_ms=sorted(latencies),
                  errors=[f.error for f in followers if f.error][:3])


def write_events(run_ids: list[str], events_per_run: int, rate: float) -> dict[str, dict[int, float]]:
    """Run the writer process; returns {run_id: {seq: commit time}}."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        spec = json.dumps({"runs": run_ids, "events": events_per_run, "rate": rate, "out": out.name})
        subprocess.run([sys.executable, "-m", "benchmarks.bench_stream", "--writer", spec], cwd=ROOT,
                       env=os.environ, check=True)
        return {run_id: {int(seq): t for seq, t in stamps.items()} for run_id, stamps in json.load(out).items()}


# ---------------------------------------------------------------- processes

def writer(spec: dict) -> None:
    """Append `events` deltas to each run, round-robin at `rate` per second, then finish them all."""
    from runs.events import event_append

    stamps: dict[str, dict[int, float]] = {run_id: {} for run_id in spec["runs"]}
    interval, started, count = 1 / spec["rate"], time.monotonic(), 0
    plan = [(run_id, "message.delta") for _ in range(spec["events"]) for run_id in spec["runs"]]
    plan += [(run_id, "run.completed") for run_id in spec["runs"]]
    for run_id, type in plan:
        delay = started + count * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        event = event_append(run_id=run_id, type=type, data={"content": "word ", "role": "assistant"})
        stamps[run_id][event.seq] = time.time()
        count += 1
    Path(spec["out"]).write_text(json.dumps(stamps))


def prepare() -> tuple[str, list[str]]:
    """Migrate, create alice and the runs (each with run.started); returns her key and the run ids."""
    import uuid

    from django.core.management import call_command
    from django.db import connection

    from arkloop.services import api_key_create, membership_ensure
    from runs.events import event_append
    from runs.models import Run
    from threads.models import Thread

    call_command("migrate", verbosity=0)
    membership = membership_ensure(org_slug="acme", email="alice@acme.test", role="admin")
    _, key = api_key_create(membership=membership, name="bench")
    run_ids = []
    for _ in range(RUNS + 1):
        thread = Thread.objects.create(org=membership.org, created_by=membership.user)
        run = Run.objects.create(org=membership.org, thread=thread, created_by=membership.user,
                                 trace_id=uuid.uuid4().hex)
        event_append(run_id=run.id, type="run.started", data={})
        run_ids.append(str(run.id))
    connection.close()  # hold nothing open while the idle streams are measured
    return key, run_ids


async def measure_all(port: int, pid: int, key: str, run_ids: list[str], database_url: str) -> list[Result]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as probe:
        spread = await scenario("spread", port=port, pid=pid, key=key, run_ids=run_ids[:RUNS],
                                events_per_run=SPREAD_EVENTS_PER_RUN, rate=SPREAD_RATE, probe=probe)
        hot = await scenario("hot", port=port, pid=pid, key=key, run_ids=run_ids[RUNS:],
                             events_per_run=HOT_EVENTS, rate=HOT_RATE, probe=probe)
    return [spread, hot]


def report(results: list[Result]) -> str:
    rows = []
    for r in results:
        lat = r.latencies_ms
        rows.append(
            f"| {r.name} | {r.followers} on {r.runs} run(s) | {r.deliveries:,} / {r.expected:,} | "
            f"{r.complete} / {r.followers} | {statistics.median(lat):.1f} | {percentile(lat, 0.99):.1f} | "
            f"{lat[-1]:.1f} | {r.rss_per_stream_kb:.1f} | {r.idle_sessions} / {r.idle_xacts} | "
            f"{r.idle_pings:,} | {r.idle_connections} |")
    errors = [e for r in results for e in r.errors]
    return "\n".join([
        f"{FOLLOWERS} followers connected at once to one Daphne process (heartbeat 1 s); "
        f"`spread`: {SPREAD_EVENTS_PER_RUN} deltas + 1 terminal event on each of {RUNS} runs, written at "
        f"{SPREAD_RATE} events/s; `hot`: {HOT_EVENTS} deltas + 1 terminal event on one run at {HOT_RATE}/s. "
        f"Latency is commit → `data:` line at the client. Idle window: {IDLE_WINDOW_SECONDS:.0f} s.",
        "",
        "| scenario | followers | deliveries | complete streams | p50 ms | p99 ms | max ms | RSS KB / idle stream "
        "| idle DB sessions / transactions | pings in idle window | DB connections while idle |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "`complete streams`: every event after the cursor exactly once, in order, then closed by the server. "
        "`idle DB sessions / transactions`: what PostgreSQL counted for the database during the idle window "
        "(transactions include the probe's own two or three statements); `DB connections while idle`: the hub's "
        "LISTEN connection plus the stream DB workers' (at most 4), whatever the number of streams.",
        *([f"\nClient errors (first few): {errors}"] if errors else []),
    ])


def worker() -> None:
    import django

    django.setup()
    from tests.servers import DaphneServer

    key, run_ids = prepare()
    database_url = os.environ["DATABASE_URL"]
    # One key opens all 1,000 streams: lift the per-key stream cap (100) for this measurement.
    with DaphneServer(database_url=database_url, ARKLOOP_SSE_HEARTBEAT_SECONDS="1", LOG_LEVEL="WARNING",
                      ARKLOOP_MAX_STREAMS_PER_PRINCIPAL="100000") as server:
        results = asyncio.run(measure_all(server.port, server.process.pid, key, run_ids, database_url))
    print("<<<bench>>>\n" + report(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker()
    elif sys.argv[1:2] == ["--writer"]:
        import django

        django.setup()
        writer(json.loads(sys.argv[2]))
