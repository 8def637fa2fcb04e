"""`python -m tests.stream.append_events RUN_ID COUNT [TERMINAL]`: append events from another process."""
from __future__ import annotations

import sys

import django


def main(run_id: str, count: int, terminal: str) -> None:
    from runs.events import event_append

    for index in range(count):
        event_append(run_id=run_id, type="message.delta", data={"content": f"p{index} ", "role": "assistant"})
    if terminal:
        event_append(run_id=run_id, type=terminal, data={})


if __name__ == "__main__":
    django.setup()
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "run.completed")
