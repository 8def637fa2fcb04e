"""`make bench`: run every benchmarks/bench_*.py and write docs/benchmarks.md.

    python -m benchmarks.run                      # everything (what `make bench` runs)
    python -m benchmarks.run realpath stream      # only these modules (bench_realpath, bench_stream)
    python -m benchmarks.run --only fanout,burst  # only these scenarios (of the modules that have them)
    python -m benchmarks.run --quick --only create   # shortened, a smoke check of the harness

A benchmark is a file `benchmarks/bench_<name>.py` (found by its name: nothing to register) with
`TITLE` and `run(database_url: str) -> str`, returning a Markdown section (its measurements and
how they were taken). Optional: `SCENARIOS`, the names `--only` can pick; the module reads the
picked ones with `benchmarks.support.selected(SCENARIOS)` and `--quick` with
`benchmarks.support.quick()` (both travel in the environment, so a worker child sees them too).
`make bench` runs this inside a throwaway PostgreSQL cluster (DATABASE_URL is set).

docs/benchmarks.md: a run of whole modules replaces their sections and keeps the others, and the
hand-written block between the KEPT markers stays as it is. A run with `--only` or `--quick`
measures less than a section says, so it prints its Markdown and leaves the file alone (`--out`
writes it elsewhere).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks.md"
KEPT_BEGIN, KEPT_END = "<!-- kept by make bench: begin -->", "<!-- kept by make bench: end -->"
SECTION = re.compile(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->\n", re.S)


def discover(names: list[str]) -> list[str]:
    found = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    return [n for n in found if not names or n in names or n.removeprefix("bench_") in names]


def wanted(module, name: str, only: list[str]) -> bool:
    """With --only: the modules named there, and those having one of the scenarios named there."""
    return not only or name.removeprefix("bench_") in only or bool(set(getattr(module, "SCENARIOS", ())) & set(only))


def write_doc(path: Path, sections: dict[str, str], order: list[str], database_url: str) -> None:
    """Replace the sections that ran, keep the others and the hand-written block."""
    old = path.read_text() if path.exists() else ""
    kept = ""
    if KEPT_BEGIN in old and KEPT_END in old:
        kept = old[old.index(KEPT_BEGIN):old.index(KEPT_END) + len(KEPT_END)] + "\n\n"
    merged = {name: body for name, body in SECTION.findall(old) if name in order}
    merged.update(sections)
    header = (f"# Benchmarks\n\nWritten by `make bench` (`benchmarks/run.py`): {os.cpu_count()} cores, Python "
              f"{platform.python_version()}, database "
              f"{'PostgreSQL' if database_url.startswith('postgres') else 'SQLite'}. "
              "Each section says when it was taken.\n\n")
    body = "\n".join(f"<!-- bench:{name} -->\n{merged[name]}<!-- /bench:{name} -->\n"
                     for name in order if name in merged)
    path.write_text(header + kept + body)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="bench modules to run (default: all)")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--quick", action="store_true", help="shortened durations (smoke check)")
    parser.add_argument("--out", type=Path, help="write the Markdown here (default: docs/benchmarks.md "
                                                  "for full runs, stdout only with --only/--quick)")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arkloop.settings")
    os.environ["BENCH_ONLY"] = ",".join(only)
    os.environ["BENCH_QUICK"] = "1" if args.quick else ""
    database_url = os.environ.get("DATABASE_URL", "")
    order = discover([])
    sections, failed = {}, []
    for name in discover(args.modules):
        module = importlib.import_module(f"benchmarks.{name}")
        if not wanted(module, name, only):
            continue
        print(f"== {module.TITLE}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            body = module.run(database_url)
        except Exception as exc:  # the others still run and are written; this section keeps its old date
            print(f"!! {name} failed: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        sections[name] = (f"## {module.TITLE}\n\n{body.strip()}\n\n"
                          f"_({datetime.date.today()}, {time.monotonic() - started:.0f} s"
                          f"{', quick' if args.quick else ''}{', only ' + ', '.join(only) if only else ''})_\n")
    if args.out or not (only or args.quick):
        write_doc(args.out or OUT, sections, order, database_url)
        print(f"wrote {args.out or OUT}", file=sys.stderr)
    else:
        print("\n".join(sections.values()))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
