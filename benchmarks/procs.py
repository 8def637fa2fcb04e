"""The server processes a real-path benchmark measures, and the CPU time each of them used.

`Servers` starts one Daphne (listen backlog 2048, checked with `ss`) and one `runagents` on a
database, with DEBUG off, and tags their PostgreSQL connections by `application_name`.
`CpuMeter.snapshot()` reads, with psutil, the CPU time (user + system, all threads) of Daphne,
the runner, PostgreSQL (every process of the cluster, including backends that already exited),
the PostgreSQL backends serving Daphne and the runner, this client process, and the whole
machine; the difference of two snapshots is what a scenario cost.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

from tests.servers import free_port, listen_backlog

ROOT = Path(__file__).resolve().parent.parent
BACKLOG = int(os.environ.get("BENCH_BACKLOG", 2048))  # another value only to compare (e.g. Daphne's default 50)
DAPHNE_APP, RUNNER_APP, PROBE_APP = "bench-daphne", "bench-runner", "bench-probe"
# Connections each process names itself (runs/stream/sources.py, runs/runner/worker.py).
APP_OWNER = {DAPHNE_APP: "daphne", "arkloop-stream-hub": "daphne", RUNNER_APP: "runner",
             "arkloop-runner-listen": "runner"}


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@dataclass
class Servers:
    """Daphne + runagents on `database_url` (already migrated); a context manager."""

    database_url: str
    env: dict[str, str]
    runner_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-realpath-")))

    def __enter__(self) -> Servers:
        env = {**os.environ, **self.env, "DATABASE_URL": self.database_url,
               "DJANGO_SETTINGS_MODULE": "arkloop.settings", "PYTHONUNBUFFERED": "1"}
        endpoint = f"tcp:port={self.port}:interface=127.0.0.1:backlog={BACKLOG}"
        self.daphne = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-e", endpoint, "arkloop.asgi:application"], cwd=ROOT,
            env={**env, "PGAPPNAME": DAPHNE_APP}, stdout=subprocess.DEVNULL,
            stderr=open(self.logs / "daphne.log", "wb"))
        self.runner = subprocess.Popen(
            [sys.executable, "manage.py", "runagents", *self.runner_args], cwd=ROOT,
            env={**env, "PGAPPNAME": RUNNER_APP}, stdout=subprocess.DEVNULL,
            stderr=open(self.logs / "runner.log", "wb"))
        try:
            self._wait_listening()
            self.backlog = listen_backlog(self.port)
            if self.backlog != BACKLOG:  # the kernel caps it at net.core.somaxconn
                raise RuntimeError(f"Daphne listens with a backlog of {self.backlog}, not {BACKLOG}: "
                                   "raise net.core.somaxconn")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in (("daphne", self.daphne), ("runner", self.runner)):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail(self.logs / f'{name}.log')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Daphne did not listen on {self.port} within {timeout:.0f} s")

    def check_alive(self) -> None:
        for name, proc in (("daphne", self.daphne), ("runner", self.runner)):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail(self.logs / f'{name}.log')}")

    def __exit__(self, *exc: object) -> None:
        for proc in (self.runner, self.daphne):
            if proc.poll() is None:
                proc.terminate()
        for proc in (self.runner, self.daphne):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _cpu(process: psutil.Process, *, reaped_children: bool = False) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    total = times.user + times.system
    return total + (times.children_user + times.children_system if reaped_children else 0.0)


def machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class CpuMeter:
    """CPU seconds used so far by each server process (psutil), for differences between snapshots."""

    def __init__(self, servers: Servers, database_url: str) -> None:
        self.daphne = psutil.Process(servers.daphne.pid)
        self.runner = psutil.Process(servers.runner.pid)
        self.probe = psycopg.connect(database_url, autocommit=True, application_name=PROBE_APP)
        backend = psutil.Process(self.probe.execute("SELECT pg_backend_pid()").fetchone()[0])
        self.postmaster = backend.parent()

    def snapshot(self) -> dict:
        """CPU seconds so far: "daphne", "runner", "postgres" (the whole cluster), "client" (this
        process), "machine" (all cores, busy), "wall" (monotonic clock); "backends": {pid: (owner, s)}
        for the PostgreSQL backends serving Daphne and the runner."""
        postgres = _cpu(self.postmaster, reaped_children=True)
        postgres += sum(_cpu(child) for child in self.postmaster.children())
        rows = self.probe.execute("SELECT pid, application_name FROM pg_stat_activity "
                                  "WHERE backend_type = 'client backend'").fetchall()
        backends = {}
        for pid, app in rows:
            if app in APP_OWNER:
                with contextlib.suppress(psutil.Error):
                    backends[pid] = (APP_OWNER[app], _cpu(psutil.Process(pid)))
        return {"daphne": _cpu(self.daphne), "runner": _cpu(self.runner), "postgres": postgres,
                "client": sum(os.times()[:2]), "machine": machine_busy_seconds(), "wall": time.monotonic(),
                "backends": backends}

    def close(self) -> None:
        self.probe.close()


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per process between two snapshots, plus "pg daphne" / "pg runner" (their
    backends; one that exited in between is missed) and "others" (the rest of the machine)."""
    used = {name: after[name] - before[name] for name in before if name != "backends"}
    used["pg daphne"] = used["pg runner"] = 0.0
    for pid, (owner, seconds) in after["backends"].items():
        used[f"pg {owner}"] += seconds - before["backends"].get(pid, (owner, 0.0))[1]
    used["others"] = used["machine"] - used["daphne"] - used["runner"] - used["postgres"] - used["client"]
    return used


def net_counters() -> dict[str, int]:
    """TcpExt ListenOverflows and ListenDrops of this network namespace (/proc/net/netstat)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
            return {name: table.get(name, 0) for name in ("ListenOverflows", "ListenDrops")}
    return {"ListenOverflows": 0, "ListenDrops": 0}



class Profiler:
    """`py-spy record --gil` of Daphne and the runner during each measured window, when
    BENCH_PROFILE names a directory (py-spy is not a project dependency: pip install py-spy).
    Writes `<dir>/<window>-<process>.txt`, collapsed stacks (`-f raw`), one line per stack with
    its sample count; profile runs are for finding hotspots, not for the numbers."""

    def __init__(self, servers: Servers) -> None:
        self.directory = Path(os.environ["BENCH_PROFILE"]) if os.environ.get("BENCH_PROFILE") else None
        self.pids = {"daphne": servers.daphne.pid, "runner": servers.runner.pid}
        self.running: list[subprocess.Popen] = []
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)
            found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
            if not found:
                raise RuntimeError("BENCH_PROFILE is set but py-spy is not installed (pip install py-spy)")
            self.py_spy = found

    def start(self, label: str) -> None:
        if not self.directory:
            return
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        self.running = [subprocess.Popen(
            [self.py_spy, "record", "--gil", "--nonblocking", "--threads", "-r", "200", "-f", "raw", "-p", str(pid),
             "-o", str(self.directory / f"{slug}-{name}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, pid in self.pids.items()]
        time.sleep(0.5)  # py-spy attaches

    def stop(self) -> None:
        for proc in self.running:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for proc in self.running:
            proc.wait(timeout=60)
        self.running = []
