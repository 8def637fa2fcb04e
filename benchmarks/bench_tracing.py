"""What tracing costs a request when it is off, and when it is on.

Per-request CPU (`time.process_time`) of `GET /v1/runs/{id}` through Django's test client
in-process (every middleware, DRF, the queries, rendering; no socket), in three modes, each in a
fresh process on its own migrated SQLite file (the comparison needs no PostgreSQL):

- `no-op`: the tracing hook of the request path (arkloop.middleware.trace_id_for) replaced by a
  module-level function that never looks at tracing: what "no tracing at all" costs;
- `unset`: as shipped, OTEL_EXPORTER_OTLP_ENDPOINT unset (the hook tests one boolean);
- `on`: tracing on, exporting to a local collector that drops what it gets (for scale).

And per delivered SSE event, the one thing metrics add to fan-out: `arkloop_sse_events_sent.inc()`.
`BENCH_TRACING_REQUESTS` sets the requests per round (default 2000, 100 with `--quick`; 5 rounds,
the median is shown).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks.support import quick

TITLE = "Tracing: per-request CPU with tracing off (a no-op, as shipped) and on"
ROOT = Path(__file__).resolve().parent.parent
REQUESTS = int(os.environ.get("BENCH_TRACING_REQUESTS", 100 if quick() else 2000))
ROUNDS = 5
MODES = ("no-op", "unset", "on")


def run(database_url: str) -> str:
    with _Collector() as collector:
        results = {mode: _measure(mode, collector.endpoint) for mode in MODES}
    lines = ["| mode | CPU per request (µs), median of rounds | vs no-op |", "|---|---|---|"]
    base = results["no-op"]["request_us"]
    for mode in MODES:
        us = results[mode]["request_us"]
        lines.append(f"| {mode} | {us:.1f} | {us - base:+.1f} |")
    inc_ns = results["unset"]["sse_inc_ns"]
    return (f"{REQUESTS} requests × {ROUNDS} rounds per mode, each mode in a fresh process.\n\n"
            + "\n".join(lines)
            + f"\n\n`arkloop_sse_events_sent.inc()` per delivered event: {inc_ns:.0f} ns.\n")


def _measure(mode: str, endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as folder:
        env.update({"DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3", "DJANGO_SETTINGS_MODULE": "arkloop.settings",
                    "BENCH_TRACING_MODE": mode, "LOG_LEVEL": "WARNING"})
        if mode == "on":
            env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"})
        done = subprocess.run([sys.executable, "-m", "benchmarks.bench_tracing", "--worker"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


class _Collector:
    """An OTLP/HTTP endpoint that accepts and drops every export."""

    def __enter__(self) -> _Collector:
        class Drop(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Drop)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


# ---------------------------------------------------------------- the worker (one mode)

def _worker() -> None:
    mode = os.environ["BENCH_TRACING_MODE"]
    from arkloop import otel

    otel.configure(service_name="bench", django=True)  # a no-op unless the endpoint is set ("on")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if mode == "no-op":
        from arkloop import middleware
        from arkloop.tracing import request_trace_id

        middleware.trace_id_for = lambda request: request_trace_id(request.headers.get("traceparent"))
    client, path = _fixture()
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(REQUESTS):
            client.get(path)
        rounds.append((time.process_time() - started) / REQUESTS * 1e6)
    print(json.dumps({"request_us": statistics.median(rounds), "sse_inc_ns": _inc_ns()}))


def _fixture():
    from rest_framework.test import APIClient

    from arkloop.services import api_key_create, membership_ensure

    membership = membership_ensure(org_slug="bench", email="bench@example.com", role="admin")
    _, key = api_key_create(membership=membership, name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    thread_id = client.post("/v1/threads", {"title": "bench"}, format="json").json()["id"]
    client.post(f"/v1/threads/{thread_id}/messages", {"content": "hello"}, format="json")
    run_id = client.post(f"/v1/threads/{thread_id}/runs", {}, format="json").json()["run_id"]
    for _ in range(50):  # warm up (imports, caches)
        client.get(f"/v1/runs/{run_id}")
    return client, f"/v1/runs/{run_id}"


def _inc_ns() -> float:
    from arkloop.metrics import SSE_EVENTS_SENT

    count = 200_000
    started = time.perf_counter()
    for _ in range(count):
        SSE_EVENTS_SENT.inc()
    return (time.perf_counter() - started) / count * 1e9


if __name__ == "__main__" and "--worker" in sys.argv:
    _worker()
