"""Tools for the fault suite: what a sound run log looks like, resuming SSE readers, and the faults
themselves (SIGKILLed runners, terminated PostgreSQL backends, a restarted cluster)."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from django.db import connection

from runs.models import Run, RunEvent
from runs.runner.leases import MAX_INTERRUPTIONS
from tests.runner.helpers import stub
from tests.stream.sse_client import Frame, events_url, iter_sse

TERMINAL = ("run.completed", "run.failed", "run.cancelled")
RUNNER_APP = "arkloop-runner"  # PGAPPNAME of the runner processes these tests start
DAPHNE_APP = "arkloop-daphne"  # PGAPPNAME of their Daphne processes (the stream's query workers)
RUNNER_LISTEN_APP = "arkloop-runner-listen"  # runs.runner.worker.LISTEN_APPLICATION_NAME
HUB_LISTEN_APP = "arkloop-stream-hub"  # runs.stream.sources.LISTEN_APPLICATION_NAME


def tool_script(index: int, *, chunks: int = 8, delay_ms: int = 200) -> str:
    """A run that calls `echo` in its first turn, then streams its reply slowly."""
    reply = " ".join(f"r{index}w{n}" for n in range(chunks))
    return stub(tools=[{"name": "echo", "arguments": {"text": f"tool {index}"}}], reply=reply, chunks=chunks,
                delay_ms=delay_ms)


def visible_reply(events: list[tuple[str, dict]]) -> str:
    """The reply as a client rebuilds it: text of a turn counts once its llm.turn.completed is in
    the log; text after the last committed turn is dropped at a run.restarted (docs/runner.md)."""
    committed, pending = [], []
    for type, data in events:
        if type == "message.delta" and data.get("channel") is None:
            pending.append(data["content"])
        elif type == "llm.turn.completed":
            committed += pending
            pending = []
        elif type == "run.restarted":
            pending = []
    return "".join(committed + pending)


def log_of(run_id: str) -> list[tuple[int, str, dict]]:
    return list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("seq", "type", "data"))


def assert_sound(run_id: str, *, allowed_failures: tuple[str, ...] = ("worker.lost",)) -> str:
    """The fault suite's invariants for one finished run; returns its terminal event type.

    Gapless seqs 1..n; exactly one terminal event, last, agreeing with the status; no tool
    result recorded twice for one call; failures only of the allowed classes (or at the interruption
    limit); a completed run's
    assistant message equals the reply its deltas spell out (no delta lost or repeated)."""
    log = log_of(run_id)
    run = Run.objects.get(pk=run_id)
    assert [seq for seq, _, _ in log] == list(range(1, len(log) + 1)), f"run {run_id}: gap in the log"
    terminal = [type for _, type, _ in log if type in TERMINAL]
    assert len(terminal) == 1 and log[-1][1] == terminal[0], f"run {run_id}: terminal events {terminal}"
    assert run.status == terminal[0].removeprefix("run."), f"run {run_id}: status {run.status} vs {terminal}"
    results = Counter(data["tool_call_id"] for _, type, data in log if type == "tool.result")
    assert all(n == 1 for n in results.values()), f"run {run_id}: tool results {results}"
    if terminal[0] == "run.failed":
        # A run interrupted again and again (lost runners, failed writes) fails at the limit instead
        # of being restarted forever: allowed whatever the test allows otherwise.
        restarts = sum(type == "run.restarted" and data.get("reason") != "released" for _, type, data in log)
        at_limit = restarts >= MAX_INTERRUPTIONS - 1 and log[-1][2]["error_class"] in ("worker.lost", "internal.error")
        assert at_limit or log[-1][2]["error_class"] in allowed_failures, f"run {run_id}: {log[-1][2]}"
    else:
        assert terminal[0] == "run.completed", f"run {run_id}: {terminal[0]}"
        assert results, f"run {run_id}: completed without its tool"
        reply = run.messages.get(role="assistant").content
        assert visible_reply([(t, d) for _, t, d in log]) == reply, f"run {run_id}: deltas differ from the reply"
    return terminal[0]


def all_finished(run_ids: list[str]) -> bool:
    return Run.objects.filter(pk__in=run_ids, status__in=("completed", "failed", "cancelled")).count() == len(run_ids)


def streaming_count(run_ids: list[str]) -> int:
    """How many of these runs have streamed at least one delta (i.e. a runner is working on them)."""
    return RunEvent.objects.filter(run_id__in=run_ids, type="message.delta").values("run_id").distinct().count()


# --- SSE readers that resume ------------------------------------------------------------------


@dataclass(eq=False)  # a Thread must stay hashable
class ResumingReader(threading.Thread):
    """Follows one run's stream to its terminal event, reconnecting with Last-Event-ID whenever
    the connection drops or the server is unavailable (as docs/streaming.md tells clients to)."""

    base: str
    run_id: str
    headers: dict[str, str]
    deadline: float = 180.0
    frames: list[Frame] = field(default_factory=list)
    connects: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, daemon=True)

    def run(self) -> None:
        give_up = time.monotonic() + self.deadline
        while time.monotonic() < give_up and not self.done:
            headers = dict(self.headers)
            if self.frames:
                headers["Last-Event-ID"] = self.frames[-1].id
            try:
                self._read(headers)
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                self.errors.append(type(exc).__name__)
            if not self.done:
                time.sleep(0.2)

    def _read(self, headers: dict[str, str]) -> None:
        timeout = httpx.Timeout(30.0, connect=5.0)
        with httpx.stream("GET", events_url(self.base, self.run_id), headers=headers, timeout=timeout) as response:
            self.connects += 1
            if response.status_code != 200:
                self.errors.append(f"HTTP {response.status_code}")
                return
            for item in iter_sse(response):
                if isinstance(item, Frame):
                    self.frames.append(item)

    @property
    def done(self) -> bool:
        return bool(self.frames) and self.frames[-1].event in TERMINAL

    def assert_matches_log(self) -> None:
        """Exactly the run's log, in order, each event once, although the reader reconnected."""
        seqs = [frame.seq for frame in self.frames]
        assert seqs == list(range(1, len(seqs) + 1)), f"stream of {self.run_id}: {seqs}"
        assert [(f.seq, f.event) for f in self.frames] == [(s, t) for s, t, _ in log_of(self.run_id)]


# --- PostgreSQL faults ------------------------------------------------------------------------


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def backends(*application_names: str) -> list[tuple[int, str, str]]:
    """`(pid, application_name, query)` of this database's client backends with these names."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, application_name, query FROM pg_stat_activity "
                       "WHERE datname = current_database() AND application_name = ANY(%s)",
                       [list(application_names)])
        return cursor.fetchall()


def terminate_backends(*application_names: str) -> Counter:
    """pg_terminate_backend on every backend with these application names; counts the terminated
    ones by application name."""
    with connection.cursor() as cursor:
        # MATERIALIZED: the filter must run first; in one WHERE the planner may call
        # pg_terminate_backend before testing the name, and terminate every backend (ours too).
        cursor.execute("WITH targets AS MATERIALIZED (SELECT pid, application_name FROM pg_stat_activity "
                       "WHERE datname = current_database() AND application_name = ANY(%s)) "
                       "SELECT application_name FROM targets WHERE pg_terminate_backend(pid)",
                       [list(application_names)])
        return Counter(name for (name,) in cursor.fetchall())


def restart_control() -> tuple[str, str, str] | None:
    """(data dir, bindir, runuser) of the throwaway cluster scripts/pgcluster.py exported, if any."""
    data, bindir = os.environ.get("ARKLOOP_TEST_PG_DATA"), os.environ.get("ARKLOOP_TEST_PG_BINDIR")
    if not data or not bindir:
        return None
    return data, bindir, os.environ.get("ARKLOOP_TEST_PG_RUNUSER", "")


def restart_postgres() -> None:
    """`pg_ctl restart -m fast` on the test cluster: every connection of every process breaks."""
    data, bindir, user = restart_control()
    server_log = os.path.join(os.path.dirname(data), "log")  # where scripts/pgcluster.py logs
    command = [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast", "-l", server_log, "-w", "restart"]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    # No pipes: the new postmaster inherits them and would keep them open for its whole life.
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    connection.close()  # this test process's own connection broke too
