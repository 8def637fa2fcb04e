"""`make bench`: run every benchmarks/bench_*.py and write docs/benchmarks.md.

Each module exposes `TITLE` and `run(database_url: str) -> str`, returning a Markdown section
(its measurements and how they were taken). `make bench` runs this inside a throwaway PostgreSQL
cluster (DATABASE_URL is set). `python -m benchmarks.run NAME ...` runs only the named ones.
"""
from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks.md"


def discover(names: list[str]) -> list[str]:
    found = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    return [n for n in found if not names or n in names or n.removeprefix("bench_") in names]


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arkloop.settings")
    database_url = os.environ.get("DATABASE_URL", "")
    sections = []
    for name in discover(argv):
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {module.TITLE}", file=sys.stderr, flush=True)
        started = time.monotonic()
        body = module.run(database_url)
        sections.append(f"## {module.TITLE}\n\n{body.strip()}\n\n_({time.monotonic() - started:.0f} s)_\n")
    header = (f"# Benchmarks\n\nWritten by `make bench` on {datetime.date.today()}: "
              f"{os.cpu_count()} cores, Python {platform.python_version()}, "
              f"database {'PostgreSQL' if database_url.startswith('postgres') else 'SQLite'}.\n\n")
    OUT.write_text(header + "\n".join(sections))
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
