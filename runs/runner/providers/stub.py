"""The `stub` provider: offline, deterministic, scriptable (SPEC §5).

It answers the last user message of the thread, or the latest input given to the run. Plain text
`T` → `You said: T`, one delta per word (each word keeps the whitespace that follows it, so the
deltas concatenate to the reply exactly). `/stub {json}` scripts the turn: `reply`, `chunks`,
`delay_ms`, `tools`, `ask`, `fail`, `fail_times`, `usage`.

Order within a run: `ask` first (if not answered yet), then the `tools` (if this run has no tool
results yet), then the reply. Without `reply` the reply is `You said: <input>` after an `ask`,
else `You said: <message>`. Its deltas are unmergeable: their count is part of the contract.
"""
from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from runs.runner.providers.base import Ask, Entry, ProviderError, StreamItem, TextDelta, ToolCall, TurnRequest, Usage

PREFIX = "/stub "
MAX_SCRIPTED_TOKENS = 10**12  # keeps scripted costs within the Run's DecimalField


@dataclass
class Script:
    text: str  # the user message the script came from
    keys: dict[str, Any]


def script_parse(text: str) -> Script:
    """`/stub {json}` → its keys; anything else (or JSON that is not an object) → no keys."""
    if text.startswith(PREFIX):
        try:
            keys = json.loads(text[len(PREFIX):])
        except (ValueError, RecursionError):  # a 32 KiB message can nest past Python's recursion limit
            keys = None
        if isinstance(keys, dict):
            return Script(text=text, keys=keys)
    return Script(text=text, keys={})


def split_words(text: str) -> list[str]:
    """Split before each word that follows whitespace: 'You said: hi' → ['You ', 'said: ', 'hi']."""
    return [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece]


def split_chunks(text: str, chunks: int) -> list[str]:
    """Split into `chunks` pieces of near-equal length (fewer when the text is shorter)."""
    count = max(1, min(chunks, len(text)))
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return [p for p in pieces if p]


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class StubProvider:
    def __init__(self, model: str = "stub") -> None:
        self.model = model

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        thread_messages = [e for e in request.entries if e.role == "user" and not e.is_input]
        script = script_parse(thread_messages[-1].content if thread_messages else "")
        keys = script.keys
        self._maybe_fail(keys, request.attempt)
        after = _entries_after(request.entries, thread_messages[-1] if thread_messages else None)
        inputs = [e.content for e in after if e.is_input]
        if keys.get("ask") and not inputs:
            output = str(keys["ask"])
            yield Ask(prompt=output)
        elif keys.get("tools") and not any(e.role == "tool" for e in after):
            calls = _tool_calls(keys["tools"])
            output = json.dumps([[c.name, c.arguments] for c in calls])
            for call in calls:
                yield call
        else:
            output = _reply(script, inputs)
            async for delta in self._deltas(output, keys):
                yield delta
        yield self._usage(request, keys, output)

    @staticmethod
    def _maybe_fail(keys: dict[str, Any], attempt: int) -> None:
        fail = keys.get("fail")
        if not fail:
            return
        times = keys.get("fail_times")
        if times is None or (isinstance(times, int) and attempt <= times):
            raise ProviderError(str(fail), f"stub scripted failure ({fail})")

    @staticmethod
    async def _deltas(reply: str, keys: dict[str, Any]) -> AsyncIterator[TextDelta]:
        chunks = keys.get("chunks")
        pieces = split_chunks(reply, chunks) if isinstance(chunks, int) and chunks > 0 else split_words(reply)
        delay = keys.get("delay_ms") or 0
        for piece in pieces:
            if isinstance(delay, (int, float)) and delay > 0:
                await asyncio.sleep(delay / 1000)
            yield TextDelta(text=piece, mergeable=False)

    @staticmethod
    def _usage(request: TurnRequest, keys: dict[str, Any], output: str) -> Usage:
        scripted = keys.get("usage")
        if isinstance(scripted, dict):
            return Usage(input_tokens=_token_count(scripted.get("input_tokens")),
                         output_tokens=_token_count(scripted.get("output_tokens")),
                         cached_input_tokens=_token_count(scripted.get("cached_input_tokens")))
        prompt = " ".join([request.system_prompt, *(e.content for e in request.entries)])
        return Usage(input_tokens=_count_tokens(prompt), output_tokens=_count_tokens(output))


def _token_count(value: Any) -> int:
    """A scripted token count: a non-negative integer; anything else counts as 0 (never a crash or a
    negative cost)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return max(0, min(int(value), MAX_SCRIPTED_TOKENS))


def _entries_after(entries: list[Entry], anchor: Entry | None) -> list[Entry]:
    if anchor is None:
        return entries
    index = max(i for i, entry in enumerate(entries) if entry is anchor)
    return entries[index + 1:]


def _tool_calls(tools: Any) -> list[ToolCall]:
    calls = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            arguments = tool.get("arguments") if isinstance(tool.get("arguments"), dict) else {}
            calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=tool["name"], arguments=arguments))
    return calls


def _reply(script: Script, inputs: list[str]) -> str:
    if isinstance(script.keys.get("reply"), str):
        return script.keys["reply"]
    if inputs:
        return f"You said: {inputs[-1]}"
    return f"You said: {script.text}"
