"""Top functions of a py-spy raw profile (collapsed stacks), as written with BENCH_PROFILE.

    python -m benchmarks.hotspots /tmp/prof/create-loop-daphne.txt [--top 25] [--match arkloop]

Inclusive: share of samples whose stack contains the function (once per stack); self: share of
samples where it is the innermost frame. With `--gil` every sample is a thread holding the GIL,
so the shares are shares of the process's Python CPU.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

LINE = re.compile(r"^(.*) (\d+)$")
FRAME = re.compile(r"^(?:process \d+:\"[^\"]*\";)?")


def function_of(frame: str) -> str:
    """`handle (daphne/http_protocol.py:123)` → `handle (daphne/http_protocol.py)`: one entry per function."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def load(path: Path, match: str) -> tuple[Counter, Counter, int]:
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        found = LINE.match(line)
        if not found:
            continue
        frames = [f for f in found[1].split(";") if not f.startswith(("process ", "thread "))]
        count = int(found[2])
        total += count
        functions = [function_of(f) for f in frames]
        for function in set(functions):
            if match in function:
                inclusive[function] += count
        if functions and match in functions[-1]:
            own[functions[-1]] += count
    return inclusive, own, total


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotspots")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only functions whose name or file contains this")
    args = parser.parse_args(argv)
    inclusive, own, total = load(args.profile, args.match)
    print(f"{args.profile}: {total} samples")
    for title, table in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title}:")
        for function, count in table.most_common(args.top):
            print(f"  {100 * count / max(1, total):5.1f}%  {function}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
