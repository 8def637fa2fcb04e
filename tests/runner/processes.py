"""`runagents` as a real subprocess on the test database, and waiting for what it does."""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from tests.servers import ROOT, subprocess_env


class RunnerProcess:
    """`python manage.py runagents`; use as a context manager (always terminated at exit)."""

    def __init__(self, database_url: str, *args: str, lease_seconds: float = 2.0, **env: str) -> None:
        self.command = [sys.executable, "manage.py", "runagents", "--grace", "3", *args]
        self.env = subprocess_env(database_url, ARKLOOP_LEASE_SECONDS=str(lease_seconds), **env)
        self.log_file = tempfile.NamedTemporaryFile(prefix="arkloop-runner-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> RunnerProcess:
        self.spawn()
        self.wait_started()
        return self

    def spawn(self) -> None:
        if self.process is None:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=self.log_file,
                                            stderr=subprocess.STDOUT)

    def wait_started(self) -> None:
        wait_until(lambda: "started" in self.log(), what="the runner to start")

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
        self.log_file.close()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> int:
        self.process.terminate()
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        with open(self.log_file.name, errors="replace") as f:
            return f.read()


def wait_until(condition: Callable[[], object], *, what: str, timeout: float = 30.0) -> None:
    """Poll until `condition()` is true; a timeout only guards against hanging, it asserts no speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
