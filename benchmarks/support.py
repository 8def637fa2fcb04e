"""What every benchmark shares: a database of its own on the benchmark's cluster, and its report."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
REPORT_MARK = "<<<bench>>>\n"


def run_in_own_database(database_url: str, *, module: str, **env: str) -> str:
    """Run `python -m <module> --worker` against a fresh database named after the module, then drop it.

    The worker prints its Markdown report after REPORT_MARK on stdout; that text is returned.
    A database of its own keeps each benchmark's millions of rows away from the others.
    """
    if not database_url.startswith("postgres"):
        return "Skipped: needs PostgreSQL (`make bench` provides one)."
    import psycopg

    name = module.rsplit(".", 1)[-1]
    own_url = urlunparse(urlparse(database_url)._replace(path=f"/{name}"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        child_env = {**os.environ, "DATABASE_URL": own_url, "DJANGO_SETTINGS_MODULE": "arkloop.settings", **env}
        done = subprocess.run([sys.executable, "-m", module, "--worker"], cwd=ROOT, env=child_env,
                              stdout=subprocess.PIPE, check=True, text=True)
        return done.stdout.split(REPORT_MARK, 1)[-1]
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def selected(scenarios: tuple[str, ...]) -> tuple[str, ...]:
    """The scenarios of a module to run: those `--only` named (all when it named none or the module)."""
    only = [name for name in os.environ.get("BENCH_ONLY", "").split(",") if name]
    picked = tuple(name for name in scenarios if name in only)
    return picked or scenarios


def quick() -> bool:
    """`--quick`: shortened durations, to check the harness rather than to measure."""
    return os.environ.get("BENCH_QUICK") == "1"
