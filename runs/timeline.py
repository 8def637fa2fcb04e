"""Reads that present a run's event log to people: the admin timeline, its live endpoint, `tail_run`.

`event_summary` turns one event into a line a person can scan; `event_item` adds the full payload
for the admin (folded when large); `assembled_reply` joins the reply text the deltas streamed.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from arkloop.text import json_clean, text_clean
from runs.models import RunEvent
from runs.stream.sse import rfc3339

FOLD_PAYLOAD_CHARS = 120  # payloads longer than this on one line are shown pretty-printed and folded
SUMMARY_CHARS = 160


def _short(value: Any, limit: int = SUMMARY_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _usage(usage: dict | None) -> str:
    usage = usage or {}
    return (f"in {usage.get('input_tokens', 0)} · out {usage.get('output_tokens', 0)}"
            f" · cached {usage.get('cached_input_tokens', 0)}")


def _tool_result(data: dict) -> str:
    error = data.get("error")
    if error:
        detail = error if not isinstance(error, dict) else f"{error.get('error_class')}: {error.get('message')}"
        return f"{data.get('tool_name')} ✗ {_short(detail)}"
    return f"{data.get('tool_name')} → {_short(data.get('result'))}"


_SUMMARIES = {
    "run.started": lambda d: f"persona {d.get('persona_id') or '—'} · route {d.get('route_id') or '—'}"
                             + (f" · retry of {d['retry_of']}" if d.get("retry_of") else ""),
    "run.route.selected": lambda d: f"{d.get('route_id')} → {d.get('provider')} / {d.get('model')}",
    "message.delta": lambda d: ("(thinking) " if d.get("channel") == "thinking" else "")
                               + _short(json.dumps(d.get("content", ""), ensure_ascii=False)),
    "tool.call": lambda d: f"{d.get('tool_name')}({_short(d.get('arguments', {}))})",
    "tool.result": _tool_result,
    "tool.denied": lambda d: f"{d.get('tool_name')} denied: {_short(d.get('reason', ''))}",
    "run.waiting_for_input": lambda d: f"{d.get('kind')}: {_short(d.get('prompt', ''))}",
    "run.input_provided": lambda d: _short(d.get("content", "")),
    "run.llm.retry": lambda d: f"attempt {d.get('attempt')}/{d.get('max_attempts')} in "
                               f"{d.get('delay_ms')} ms after {d.get('error_class')}",
    "run.restarted": lambda d: f"attempt {d.get('attempt')}: {_short(d.get('reason', ''))}",
    "llm.turn.completed": lambda d: f"{_usage(d.get('usage'))} · ${d.get('cost_usd', 0)}",
    "run.cancel_requested": lambda d: "cancel requested",
    "run.completed": lambda d: f"{_usage(d.get('usage'))} · ${d.get('total_cost_usd', 0)}"
                               f" · {d.get('credits_used', 0)} credits",
    "run.failed": lambda d: f"{d.get('error_class')}: {_short(d.get('message', ''))}",
    "run.cancelled": lambda d: _short(d.get("reason") or "cancelled"),
}


def event_summary(*, type: str, data: dict) -> str:
    """One line saying what the event did; unknown types show their data, trace id left out."""
    data = data if isinstance(data, dict) else {"value": data}
    summarize = _SUMMARIES.get(type)
    if summarize is None:
        return _short({k: v for k, v in data.items() if k != "trace_id"})
    try:
        return summarize(data)
    except (TypeError, ValueError, AttributeError):  # a malformed payload still gets a line
        return _short(data)


def event_item(event: RunEvent) -> dict[str, Any]:
    """The event as the admin timeline shows it: the summary, and the payload on one line, or
    pretty-printed and folded when large. The trace id is left out: every event of a run has the
    run's, which the run page shows once."""
    # Cleaned again in case it was stored before text from elsewhere was cleaned on the way in: a
    # lone surrogate cannot be encoded into the page.
    stored = json_clean(event.data)
    data = {k: v for k, v in stored.items() if k != "trace_id"} if isinstance(stored, dict) else stored
    payload = json.dumps(data, ensure_ascii=False, sort_keys=True)
    folded = len(payload) > FOLD_PAYLOAD_CHARS
    if folded:
        payload = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=2)
    return {
        "seq": event.seq,
        "type": event.type,
        "created_at": rfc3339(event.created_at),
        "summary": event_summary(type=event.type, data=stored),
        "payload": payload,
        "folded": folded,
        "terminal": event.type in ("run.completed", "run.failed", "run.cancelled"),
    }


def events_after(*, run_id: Any, after_seq: int = 0, limit: int | None = None) -> list[RunEvent]:
    """The run's events with `seq > after_seq`, in order, at most `limit` of them."""
    events = RunEvent.objects.filter(run_id=run_id, seq__gt=after_seq).order_by("seq")
    return list(events[:limit] if limit else events)


def assembled_reply(events: Iterable[RunEvent]) -> str:
    """The visible reply text: the assistant deltas joined, without thinking.

    A `run.restarted` means a new runner redoes the turn in progress, so the deltas streamed since
    the last completed turn are dropped, as the SSE contract tells clients to do.
    """
    kept: list[str] = []
    turn_start = 0
    for event in events:
        if event.type == "message.delta" and event.data.get("channel") != "thinking":
            kept.append(str(event.data.get("content", "")))
        elif event.type == "llm.turn.completed":
            turn_start = len(kept)
        elif event.type == "run.restarted":
            del kept[turn_start:]
    return text_clean("".join(kept))
