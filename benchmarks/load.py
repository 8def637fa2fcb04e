"""`make load`: 200 SSE clients plus 20 run creations per second against Daphne + a runner.

    python scripts/pgcluster.py -- python -m benchmarks.load     # what `make load` runs
    ARKLOOP_LOAD_SECONDS=60 make load                            # shorter (default 300 s)

Knobs (environment): ARKLOOP_LOAD_SECONDS (300), ARKLOOP_LOAD_CLIENTS (200), ARKLOOP_LOAD_RATE
(run creations per second, 20), ARKLOOP_LOAD_OUT (report file, docs/load.md; "-" prints only).

On the throwaway PostgreSQL of scripts/pgcluster.py (it migrates that database): one Daphne
process (DEBUG off) and one `runagents --concurrency 64`. One asyncio client process runs
- a creator: every 1/RATE s a new thread, its message (a stub run streaming 10 deltas 100 ms
  apart) and the run — three POSTs; creations that fall behind are counted, never queued up;
- CLIENTS SSE followers: each follows one of the newest runs to its terminal event (checking
  seqs 1..n, no gap, no duplicate), then the next one, for the whole duration;
- a sampler, every 2 s: VmRSS of the Daphne and runner processes, and the database's
  client backends grouped by application_name (PGAPPNAME names each process's connections).
Pass/fail: no 5xx; every stream gapless; RSS bounded (the last third of the samples grows no
more than 25% over the middle third's peak); DB connections bounded by processes (peak well
under the number of clients). Results are printed and written to docs/load.md.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from tests.servers import daphne_command

ROOT = Path(__file__).resolve().parent.parent
LOGS = Path(tempfile.gettempdir())  # load-daphne.log, load-runner.log (warnings and errors)
TERMINAL = ("run.completed", "run.failed", "run.cancelled")
DAPHNE_APP, RUNNER_APP = "arkloop-daphne", "arkloop-runner"
SCRIPT = "/stub " + json.dumps({"reply": " ".join(f"w{n}" for n in range(10)), "chunks": 10, "delay_ms": 100})


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)  # "POST 201", "GET 200", "transport <Error>"
    created: deque = field(default_factory=lambda: deque(maxlen=50))  # newest run ids
    created_total: int = 0
    skipped_ticks: int = 0
    streams_complete: int = 0
    streams_incomplete: int = 0
    stream_faults: list[str] = field(default_factory=list)  # gaps, duplicates, bad starts
    frames: int = 0
    create_seconds: list[float] = field(default_factory=list)  # the three POSTs of one run creation
    samples: list[dict] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for key, n in self.statuses.items() if key.split()[-1].startswith("5"))


# ---------------------------------------------------------------- processes


def start_processes(database_url: str) -> tuple[subprocess.Popen, subprocess.Popen, str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "arkloop.settings",
           "DEBUG": "false", "SECRET_KEY": "load-test-only-secret-key-load-test-only-secret-key",
           "ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG": "0", "LOG_LEVEL": "WARNING", "ARKLOOP_SSE_HEARTBEAT_SECONDS": "5"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    created = subprocess.run([*manage, "create_api_key", "--org", "load", "--email", "load@load.test"],
                             cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    daphne = subprocess.Popen(daphne_command("127.0.0.1", port), cwd=ROOT,
                              env={**env, "PGAPPNAME": DAPHNE_APP, "PYTHON": sys.executable},
                              stdout=subprocess.DEVNULL, stderr=open(LOGS / "load-daphne.log", "wb"))
    runner = subprocess.Popen([*manage, "runagents", "--concurrency", "64"], cwd=ROOT,
                              env={**env, "PGAPPNAME": RUNNER_APP}, stdout=subprocess.DEVNULL,
                              stderr=open(LOGS / "load-runner.log", "wb"))
    return daphne, runner, f"http://127.0.0.1:{port}", key


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------- load


async def wait_ready(http: httpx.AsyncClient) -> None:
    for _ in range(200):
        try:
            if (await http.get("/v1/runs?limit=1")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("Daphne did not come up")


async def create_run(http: httpx.AsyncClient, tally: Tally, index: int) -> None:
    began = time.monotonic()
    try:
        thread = await http.post("/v1/threads", json={"title": f"load {index}"})
        tally.statuses[f"POST {thread.status_code}"] += 1
        message = await http.post(f"/v1/threads/{thread.json()['id']}/messages", json={"content": SCRIPT})
        tally.statuses[f"POST {message.status_code}"] += 1
        run = await http.post(f"/v1/threads/{thread.json()['id']}/runs", json={})
        tally.statuses[f"POST {run.status_code}"] += 1
        if run.status_code == 201:
            tally.created.append(run.json()["run_id"])
            tally.created_total += 1
            tally.create_seconds.append(time.monotonic() - began)
    except (httpx.TransportError, KeyError, ValueError) as exc:
        tally.statuses[f"create {type(exc).__name__}"] += 1


async def creator(http: httpx.AsyncClient, tally: Tally, rate: float, until: float) -> None:
    in_flight: set[asyncio.Task] = set()
    tick, index = time.monotonic(), 0
    while tick < until:
        if len(in_flight) < 4 * rate:  # a slow server gets fewer creations, not a growing backlog
            task = asyncio.create_task(create_run(http, tally, index))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        else:
            tally.skipped_ticks += 1
        index += 1
        tick += 1 / rate
        await asyncio.sleep(max(0.0, tick - time.monotonic()))
    await asyncio.gather(*in_flight)


async def follower(http: httpx.AsyncClient, tally: Tally, number: int, until: float) -> None:
    while time.monotonic() < until:
        if not tally.created:
            await asyncio.sleep(0.2)
            continue
        run_id = tally.created[-1 - number % len(tally.created)]
        await follow_one(http, tally, run_id)


async def follow_one(http: httpx.AsyncClient, tally: Tally, run_id: str) -> None:
    seqs, last_type = [], None
    try:
        async with http.stream("GET", f"/v1/runs/{run_id}/events", timeout=httpx.Timeout(60, connect=10)) as response:
            tally.statuses[f"GET {response.status_code}"] += 1
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    seqs.append(int(line[4:]))
                elif line.startswith("event: "):
                    last_type = line[7:]
    except httpx.TransportError as exc:
        tally.statuses[f"stream {type(exc).__name__}"] += 1
    tally.frames += len(seqs)
    if seqs != list(range(1, len(seqs) + 1)):
        tally.stream_faults.append(f"{run_id}: {seqs[:5]}… not 1..n")
    if last_type in TERMINAL:
        tally.streams_complete += 1
    else:
        tally.streams_incomplete += 1


async def sampler(tally: Tally, database_url: str, pids: dict[str, int], until: float, started: float) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True,
                                                     application_name="arkloop-load-sampler") as conn:
        while time.monotonic() < until:
            rows = await (await conn.execute(
                "SELECT coalesce(nullif(application_name, ''), '(unnamed)'), count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND backend_type = 'client backend' "
                "AND application_name <> 'arkloop-load-sampler' GROUP BY 1")).fetchall()
            runs = await (await conn.execute("SELECT status, count(*) FROM runs_run GROUP BY 1")).fetchall()
            tally.samples.append({"t": time.monotonic() - started,
                                  **{f"rss {name}": rss_mb(pid) for name, pid in pids.items()},
                                  **{f"cpu {name}": cpu_seconds(pid) for name, pid in pids.items()},
                                  "cpu client": time.process_time(), "load": os.getloadavg()[0],
                                  "connections": dict(rows), "runs": dict(runs)})
            await asyncio.sleep(2.0)


async def drive(base: str, key: str, database_url: str, pids: dict[str, int], *, seconds: float, clients: int,
                rate: float) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients + 8 * int(rate) + 16, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=httpx.Timeout(30, connect=10)) as http:
        await wait_ready(http)
        started = time.monotonic()
        until = started + seconds
        log(f"load: {clients} SSE clients, {rate}/s run creations, {seconds:.0f} s")
        tasks = [asyncio.create_task(sampler(tally, database_url, pids, until + 10, started)),
                 asyncio.create_task(creator(http, tally, rate, until))]
        tasks += [asyncio.create_task(follower(http, tally, n, until)) for n in range(clients)]
        await asyncio.gather(*tasks)
    return tally


# ---------------------------------------------------------------- report


def verdicts(tally: Tally, clients: int) -> dict[str, tuple[bool, str]]:
    thirds = max(1, len(tally.samples) // 3)
    checks = {}
    for name in ("rss daphne", "rss runner"):
        middle = max(s[name] for s in tally.samples[thirds:2 * thirds] or tally.samples)
        last = max(s[name] for s in tally.samples[2 * thirds:] or tally.samples)
        checks[f"{name} bounded"] = (last <= middle * 1.25,
                                     f"peak {middle:.0f} MB in the middle third, {last:.0f} MB in the last")
    peak = max(sum(s["connections"].values()) for s in tally.samples)
    checks["db connections bounded by processes"] = (peak < clients / 4, f"peak {peak} backends, {clients} clients")
    checks["no 5xx"] = (tally.server_errors == 0, f"{tally.server_errors} responses 5xx")
    checks["streams gapless"] = (not tally.stream_faults, f"{len(tally.stream_faults)} faulty streams")
    return checks


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def cpu_used(tally: Tally, name: str) -> float:
    return tally.samples[-1][f"cpu {name}"] - tally.samples[0][f"cpu {name}"] if tally.samples else 0.0


def report(tally: Tally, *, seconds: float, clients: int, rate: float) -> str:
    checks = verdicts(tally, clients)
    peaks: Counter = Counter()
    for sample in tally.samples:
        for app, n in sample["connections"].items():
            peaks[app] = max(peaks[app], n)
    final_runs = tally.samples[-1]["runs"] if tally.samples else {}
    lines = [
        "# Load test",
        "",
        f"Written by `make load` on {datetime.date.today()}: {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, PostgreSQL (throwaway cluster). Reproduce: `make load` "
        f"(`ARKLOOP_LOAD_SECONDS={seconds:.0f} make load` for this duration). What it does: "
        "`benchmarks/load.py` (docstring). The load generator, Daphne, the runner and PostgreSQL share the "
        "same 2 cores, and other test suites may have been running.",
        "",
        f"Asked: {clients} SSE clients, {rate:g} run creations/s (3 POSTs each) for {seconds:.0f} s.",
        "",
        "| check | result | detail |",
        "|---|---|---|",
        *[f"| {name} | {'pass' if ok else '**FAIL**'} | {detail} |" for name, (ok, detail) in checks.items()],
        "",
        "| measure | value |",
        "|---|---|",
        f"| runs created | {tally.created_total} ({tally.created_total / seconds:.1f}/s achieved; "
        f"{tally.skipped_ticks} creations skipped because 4×rate were still in flight) |",
        f"| run creation (3 POSTs) p50 / p99 | {pct(tally.create_seconds, 0.5):.2f} s / "
        f"{pct(tally.create_seconds, 0.99):.2f} s |",
        f"| CPU seconds used: Daphne / runner / load client | {cpu_used(tally, 'daphne'):.0f} / "
        f"{cpu_used(tally, 'runner'):.0f} / {cpu_used(tally, 'client'):.0f} (of {2 * seconds:.0f} available "
        f"on 2 cores; load average {max(s['load'] for s in tally.samples):.1f} at its peak) |",
        f"| runs by status at the end | {', '.join(f'{k} {v}' for k, v in sorted(final_runs.items()))} |",
        f"| SSE streams followed to their terminal event | {tally.streams_complete} |",
        f"| SSE streams cut short (end of the test) | {tally.streams_incomplete} |",
        f"| SSE frames received | {tally.frames:,} |",
        f"| responses | {', '.join(f'{k}: {v}' for k, v in sorted(tally.statuses.items()))} |",
        f"| peak DB backends by application_name | {', '.join(f'{k} {v}' for k, v in sorted(peaks.items()))} |",
        "",
        "Samples over time (every ~10% of the run):",
        "",
        "| t (s) | Daphne RSS MB | runner RSS MB | DB backends | active runs |",
        "|---|---|---|---|---|",
    ]
    step = max(1, len(tally.samples) // 10)
    for sample in tally.samples[::step] + tally.samples[-1:]:
        active = sum(n for status, n in sample["runs"].items() if status in ("running", "cancelling"))
        lines.append(f"| {sample['t']:.0f} | {sample['rss daphne']:.0f} | {sample['rss runner']:.0f} | "
                     f"{sum(sample['connections'].values())} | {active} |")
    if tally.stream_faults:
        lines += ["", "Faulty streams (first 10):", "", *[f"- {fault}" for fault in tally.stream_faults[:10]]]
    return "\n".join(lines) + "\n"


def main() -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        sys.exit("needs PostgreSQL: python scripts/pgcluster.py -- python -m benchmarks.load (make load)")
    seconds = float(os.environ.get("ARKLOOP_LOAD_SECONDS", "300"))
    clients = int(os.environ.get("ARKLOOP_LOAD_CLIENTS", "200"))
    rate = float(os.environ.get("ARKLOOP_LOAD_RATE", "20"))
    daphne, runner, base, key = start_processes(database_url)
    try:
        tally = asyncio.run(drive(base, key, database_url, {"daphne": daphne.pid, "runner": runner.pid},
                                  seconds=seconds, clients=clients, rate=rate))
    finally:
        stop(runner)
        stop(daphne)
    text = report(tally, seconds=seconds, clients=clients, rate=rate)
    print(text)
    out = os.environ.get("ARKLOOP_LOAD_OUT", str(ROOT / "docs" / "load.md"))
    if out != "-":
        Path(out).write_text(text)
        log(f"wrote {out}")
    return 0 if all(ok for ok, _ in verdicts(tally, clients).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
