"""Fitting a conversation into the route's context window (estimated tokens, newest messages kept).

The provider request holds the system prompt, the tool specs and the newest messages whose
estimated tokens fit in `context_window` minus the output budget (the call's `max_tokens`);
older messages are left out of the request, never out of the thread. Exact counting would need
each model's tokenizer; an estimate of one token per 4 characters (plus a few per message) is
what a budget needs, and errs on the side of sending less for most text.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

from runs.runner.providers.base import Entry, ToolSpec

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # role, separators: what every chat format adds per message
DEFAULT_OUTPUT_RESERVE = 4096  # kept free for the answer when the call sets no max_tokens


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def message_tokens(chars: int) -> int:
    """`entry_tokens` of an entry without tool calls whose content is `chars` characters long: a
    thread message (messages carry no tool calls), sized by the database without loading it.

    Restated in SQL, on `length(content)`, by runs.runner.context._first_page_postgres (the
    conversation's first page in one query needs the sum in the database); change both together —
    tests/runner/test_context_window.py checks they agree.
    """
    return MESSAGE_OVERHEAD_TOKENS + chars // CHARS_PER_TOKEN + 1


def entry_tokens(entry: Entry) -> int:
    calls = sum(estimate_tokens(call.name) + estimate_tokens(json.dumps(call.arguments)) for call in entry.tool_calls)
    return message_tokens(len(entry.content)) + calls


def input_budget(*, context_window: int, max_tokens: int | None, system_prompt: str, tools: Sequence[ToolSpec]) -> int:
    """Tokens left for the messages once the prompt, the tool specs and the answer are accounted for."""
    reserve = max_tokens if max_tokens is not None else min(DEFAULT_OUTPUT_RESERVE, context_window // 4)
    fixed = estimate_tokens(system_prompt) + sum(
        estimate_tokens(tool.name + tool.description + json.dumps(tool.parameters)) for tool in tools)
    return context_window - reserve - fixed


def window_fit(entries: Sequence[Entry], budget: int) -> tuple[list[Entry], int]:
    """The newest entries whose tokens fit in `budget`, oldest first, and how many were left out.

    The newest entry is always kept (a request needs something to answer), even alone over budget.
    A tool outcome is never kept without the assistant message that called it: a cut that would
    start the request with tool messages moves past them.
    """
    kept = 0
    used = 0
    for entry in reversed(entries):
        cost = entry_tokens(entry)
        if kept and used + cost > budget:
            break
        used += cost
        kept += 1
    start = len(entries) - kept
    while start < len(entries) - 1 and entries[start].role == "tool":
        start += 1
    return list(entries[start:]), start
