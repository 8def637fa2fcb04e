"""Real processes for tests: Daphne serving the ASGI app, sharing the test database."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database the tests run on (pytest-django's test database)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(settings['NAME']).resolve()}"
    user, password = settings.get("USER") or "", settings.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{auth}{settings.get('HOST') or '127.0.0.1'}:{settings.get('PORT') or 5432}/{settings['NAME']}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "arkloop.settings",
           "PYTHONUNBUFFERED": "1"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def listen_backlog(port: int) -> int:
    """The accept-queue size of the socket listening on `port`, as `ss -ltn` shows it (Send-Q)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    fields = out.split()
    return int(fields[2]) if len(fields) > 2 else 0


def wait_for_port(port: int, *, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout}s")


def daphne_command(host: str, port: int) -> list[str]:
    """Daphne started the way `make run` starts it (scripts/daphne.sh: listen backlog 2048)."""
    return ["bash", str(ROOT / "scripts" / "daphne.sh"), host, str(port)]


class DaphneServer:
    """Daphne serving arkloop.asgi on a free port (as `make run` starts it); `.url` is its base URL."""

    def __init__(self, *, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = subprocess_env(database_url, **env)
        self.process: subprocess.Popen | None = None
        self.log_path = ROOT / f".daphne-test-{self.port}.log"

    def __enter__(self) -> DaphneServer:
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(daphne_command("127.0.0.1", self.port), cwd=ROOT,
                                        env={**self.env, "PYTHON": sys.executable}, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        wait_for_port(self.port, process=self.process)
        return self

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()
        self.log_path.unlink(missing_ok=True)

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
