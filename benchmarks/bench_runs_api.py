"""`GET /v1/runs` with a million runs in one org, its query plans, and run creation under load.

`run()` makes a database of its own on the benchmark's PostgreSQL cluster, measures in a child
process (`python -m benchmarks.bench_runs_api --worker`, with DATABASE_URL pointing there) and
drops it, so a million rows never reach the other benchmarks.

- Rows: the runs are inserted with one `INSERT … SELECT generate_series(…)` per chunk (then
  VACUUM ANALYZE), all finished, one second apart, over 10,000 threads; 10% are bob's (a member).
- Server time: Django's test client in-process (every middleware, DRF, the queries, rendering;
  no socket), timed per request.
- Plans: `EXPLAIN (ANALYZE, BUFFERS)` of the SQL those requests ran, captured while they ran.
- Posting runs onto pre-made threads: real Daphne (one process, then one per core on a shared
  socket), 16 client threads with keep-alive HTTP, each posting runs onto threads made
  beforehand; no runner executes them, and the org's cap is off (0) so every create is admitted.
  This is the cost of `POST …/runs` alone; clients creating threads, messages and runs while a
  runner executes them are measured in bench_realpath.
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.support import log, run_in_own_database

LISTEN_BACKLOG = 2048  # as scripts/daphne.sh listens: a burst of clients waits in the queue, none is dropped

TITLE = "Runs API: list pages over 1,000,000 runs, query plans, runs posted onto pre-made threads"
ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", 1_000_000))
THREADS = 10_000
CHUNK = 200_000
SAMPLES = 300
CLIENTS = 16
CREATES = 2_000


def run(database_url: str) -> str:
    return run_in_own_database(database_url, module="benchmarks.bench_runs_api")


# ---------------------------------------------------------------- the worker (own database)

def percentiles(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(ordered):.1f} | {p99:.1f} | {ordered[-1]:.1f}"


def _column_sql(field, connection, params: list) -> str:
    """SQL for one runs_run column of row number `i` (the generate_series variable)."""
    special = {
        "id": "gen_random_uuid()",
        "org_id": "%(org)s::uuid",
        "created_by_id": "CASE WHEN mod(i, 10) = 0 THEN %(bob)s::uuid ELSE %(alice)s::uuid END",
        "status": "'completed'",
        "persona_id": "CASE WHEN mod(i, 3) = 0 THEN 'careful@1' ELSE 'default@1' END",
        "route_id": "'stub'",
        "model": "'stub-echo-1'",
        "trace_id": "md5(i::text)",
        "created_at": "%(t0)s::timestamptz + i * interval '1 second'",
        "completed_at": "%(t0)s::timestamptz + i * interval '1 second' + interval '800 milliseconds'",
        "last_seq": "2",
        "total_input_tokens": "100", "total_output_tokens": "40",
    }
    if field.column in special:
        return special[field.column]
    params.append(field.get_db_prep_save(field.get_default(), connection))
    return f"%(p{len(params) - 1})s"


def insert_runs(*, org_id, alice_id, bob_id, total: int) -> None:
    """Bulk-insert `total` finished runs with thread ids from a lookup table (fast path)."""
    from django.db import connection

    from runs.models import Run

    fields = Run._meta.concrete_fields
    extra: list = []
    columns = {f.column: _column_sql(f, connection, extra) for f in fields}
    columns["thread_id"] = "t.id"
    select = ", ".join(columns.values())
    sql = (f"INSERT INTO runs_run ({', '.join(columns)}) SELECT {select} FROM generate_series(%(lo)s, %(hi)s) AS i "
           f"JOIN bench_threads t ON t.n = mod(i, {THREADS})")
    t0 = "2020-01-01T00:00:00Z"
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_threads AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id "
                       "FROM threads_thread WHERE org_id = %s", [org_id])
        for lo in range(1, total + 1, CHUNK):
            hi = min(total, lo + CHUNK - 1)
            params = {"org": str(org_id), "alice": str(alice_id), "bob": str(bob_id), "t0": t0, "lo": lo, "hi": hi,
                      **{f"p{n}": value for n, value in enumerate(extra)}}
            cursor.execute(sql, params)
            log(f"  inserted {hi:,} / {total:,} runs")
        cursor.execute("DROP TABLE bench_threads")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE runs_run")
        cursor.execute("VACUUM ANALYZE threads_thread")


def setup_data():
    from django.core.management import call_command

    from arkloop.services import api_key_create, membership_ensure
    from threads.models import Thread

    call_command("migrate", verbosity=0)
    alice = membership_ensure(org_slug="bench", email="alice@bench.test", role="admin")
    bob = membership_ensure(org_slug="bench", email="bob@bench.test", role="member")
    Thread.objects.bulk_create([Thread(org_id=alice.org_id, created_by_id=alice.user_id, title=f"t{i}")
                                for i in range(THREADS)], batch_size=5000)
    started = time.monotonic()
    insert_runs(org_id=alice.org_id, alice_id=alice.user_id, bob_id=bob.user_id, total=RUNS)
    load_seconds = time.monotonic() - started
    keys = {name: api_key_create(membership=m)[1] for name, m in (("alice", alice), ("bob", bob))}
    return alice, keys, load_seconds


def timed_get(client, path: str, key: str, samples: int) -> tuple[list[float], list[str]]:
    """Server time of `samples` GETs (after a warm-up), and the SQL the last one ran."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    for _ in range(10):
        assert client.get(path, **headers).status_code == 200
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        response = client.get(path, **headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:200]
    with CaptureQueriesContext(connection) as captured:
        client.get(path, **headers)
    return times, [q["sql"] for q in captured.captured_queries]


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def list_pages(alice, keys) -> tuple[list[str], list[str]]:
    from django.test import Client

    from runs.models import Run

    newest = Run.objects.filter(org_id=alice.org_id).order_by("-created_at", "-id").values_list("pk", flat=True)
    deep_anchor = newest[int(RUNS * 0.9)]
    bobs_anchor = newest.filter(created_by__email="bob@bench.test")[int(RUNS * 0.09)]
    thread_id = Run.objects.filter(org_id=alice.org_id).values_list("thread_id", flat=True).first()
    cases = [
        ("first page (admin, limit 50)", "/v1/runs", "alice"),
        ("deep page, 90% down (`before=`)", f"/v1/runs?before={deep_anchor}", "alice"),
        ("first page, limit 200", "/v1/runs?limit=200", "alice"),
        ("member's first page (10% of the runs)", "/v1/runs", "bob"),
        ("member's deep page", f"/v1/runs?before={bobs_anchor}", "bob"),
        ("filter `status=completed`", "/v1/runs?status=completed", "alice"),
        (f"filter `thread_id` ({RUNS // THREADS} runs)", f"/v1/runs?thread_id={thread_id}", "alice"),
        ("filter `persona_id=careful`", "/v1/runs?persona_id=careful", "alice"),
    ]
    client, rows, plans = Client(), [], []
    for label, path, who in cases:
        times, queries = timed_get(client, path, keys[who], SAMPLES)
        rows.append(f"| {label} | {percentiles(times)} |")
        run_queries = [q for q in queries if 'FROM "runs_run"' in q]
        for sql in run_queries:
            plan = explain(sql)
            seq = "Seq Scan on runs_run" in plan
            plans.append(f"**{label}** — {'SEQUENTIAL SCAN' if seq else 'no sequential scan'}\n\n"
                         f"```sql\n{sql}\n```\n\n```\n{plan}\n```\n")
        log(f"  {label}: p99 {sorted(times)[int(len(times) * 0.99)]:.1f} ms")
    return rows, plans


class DaphneProcesses:
    """`processes` Daphne processes accepting on one shared listening socket (`daphne --fd`),
    the way a process manager runs one per core."""

    def __init__(self, *, database_url: str, processes: int, **env: str) -> None:
        from tests.servers import subprocess_env

        self.sock = socket.create_server(("127.0.0.1", 0), backlog=LISTEN_BACKLOG)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.env = subprocess_env(database_url, **env)
        self.count = processes
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> DaphneProcesses:
        fd = self.sock.fileno()
        command = [sys.executable, "-m", "daphne", "--fd", str(fd), "arkloop.asgi:application"]
        self.procs = [subprocess.Popen(command, cwd=ROOT, env=self.env, pass_fds=[fd], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL) for _ in range(self.count)]
        time.sleep(3)  # the processes import Django; the shared backlog holds early connections anyway
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)
        self.sock.close()


def creation_rate(alice, key: str, *, processes: int) -> str:
    import httpx
    from django.db import connection

    from threads.models import Thread

    threads = Thread.objects.bulk_create([Thread(org_id=alice.org_id, created_by_id=alice.user_id, title="c")
                                          for _ in range(CREATES + CLIENTS * 5)])
    ids = [str(t.pk) for t in threads]
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client_loop(mine: list[str]) -> None:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            for thread_id in mine:
                started = time.perf_counter()
                status = http.post(f"/v1/threads/{thread_id}/runs", json={}).status_code
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
                    statuses[status] = statuses.get(status, 0) + 1

    env = {"ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG": "0", "LOG_LEVEL": "WARNING", "DEBUG": "false",
           "SECRET_KEY": "bench-only-secret-key-bench-only-secret-key"}
    with DaphneProcesses(database_url=database_url, processes=processes, **env) as server:
        warm, measured = ids[: CLIENTS * 5], ids[CLIENTS * 5:]
        _run_clients(client_loop, warm)
        latencies.clear()
        statuses.clear()
        started = time.monotonic()
        _run_clients(client_loop, measured)
        elapsed = time.monotonic() - started
    rate = len(measured) / elapsed
    return (f"| {processes} | {len(measured):,} | {elapsed:.1f} s | **{rate:.0f} posted/s** | {statuses} | "
            f"{percentiles(latencies)} |")


def _run_clients(loop, ids: list[str]) -> None:
    workers = [threading.Thread(target=loop, args=(ids[n::CLIENTS],)) for n in range(CLIENTS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def worker() -> None:
    import logging

    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    log(f"  loading {RUNS:,} runs")
    alice, keys, load_seconds = setup_data()
    rows, plans = list_pages(alice, keys)
    log("  creation rate")
    creation = [creation_rate(alice, keys["alice"], processes=n) for n in (1, os.cpu_count() or 1)]
    print("<<<bench>>>")
    print(f"{RUNS:,} runs in one org over {THREADS:,} threads (loaded in {load_seconds:.0f} s). "
          f"Server time of {SAMPLES} requests each, in milliseconds (target: p99 ≤ 25 ms):\n")
    print("| request | median | p99 | max |\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n### Runs posted onto pre-made threads, no runner executing them\n\n{CLIENTS} concurrent clients "
          f"(keep-alive HTTP), each posting `POST /v1/threads/{{id}}/runs` onto threads of its own made beforehand, "
          f"against Daphne processes sharing one listening socket (DEBUG off). No runner runs: this is the cost of "
          f"the run-creation request alone, not a rate of executed runs (see the real-path section for that). "
          f"Target: ≥ 200 runs posted/s.\n")
    print("| Daphne processes | runs posted | time | runs posted/s | statuses | latency median / p99 / max (ms) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(creation) + "\n")
    print("### Query plans of the list requests\n")
    print("\n".join(plans))


if __name__ == "__main__" and "--worker" in sys.argv:
    sys.path.insert(0, str(ROOT))
    worker()
