"""A throwaway PostgreSQL cluster from the machine's binaries, for tests and benchmarks.

    python scripts/pgcluster.py -- COMMAND ...   # runs COMMAND with DATABASE_URL set, then stops

COMMAND also gets ARKLOOP_TEST_PG_DATA (the data directory), ARKLOOP_TEST_PG_BINDIR (pg_ctl's
directory) and ARKLOOP_TEST_PG_RUNUSER (the user to run pg_ctl as via runuser, empty when none),
so fault tests can restart this throwaway cluster (tests/soak); nothing else should use them.
Uses Debian's PostgreSQL binaries (/usr/lib/postgresql/*/bin). PostgreSQL refuses to run as root,
so as root the cluster runs as the `postgres` user in a directory that user owns.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def find_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    sys.exit("PostgreSQL server binaries not found (initdb). Install them: apt-get install -y postgresql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@contextlib.contextmanager
def cluster(*, max_connections: int = 300, control: dict[str, str] | None = None) -> Iterator[str]:
    """Start a cluster on a free port; yields its DATABASE_URL (database `arkloop`, user postgres).

    `control`, when given, is filled with the ARKLOOP_TEST_PG_* variables describing the cluster."""
    bindir = find_bindir()
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        try:
            pwd.getpwnam(user)
        except KeyError:
            sys.exit("running as root needs the `postgres` user (apt-get install -y postgresql creates it)")
    root = Path(tempfile.mkdtemp(prefix="arkloop-pg-"))
    data = root / "data"
    if user:
        shutil.chown(root, user)
    port = free_port()
    run = lambda cmd: subprocess.run(_as_owner(cmd, user), check=True, stdout=subprocess.DEVNULL,  # noqa: E731
                                     stderr=subprocess.PIPE)
    run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
    opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
            f"-c full_page_writes=off -c max_connections={max_connections}")
    run([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"])
    if control is not None:
        control.update(ARKLOOP_TEST_PG_DATA=str(data), ARKLOOP_TEST_PG_BINDIR=str(bindir),
                       ARKLOOP_TEST_PG_RUNUSER=user or "")
    try:
        run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "arkloop"])
        yield f"postgres://postgres@127.0.0.1:{port}/arkloop"
    finally:
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], user),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print(__doc__)
        return 2
    command = argv[argv.index("--") + 1:]
    control: dict[str, str] = {}
    with cluster(control=control) as url:
        print(f"PostgreSQL test cluster at {url}", file=sys.stderr)
        return subprocess.call(command, env={**os.environ, **control, "DATABASE_URL": url})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
