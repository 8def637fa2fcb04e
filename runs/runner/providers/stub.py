"""The `stub` provider: offline, deterministic, scriptable (SPEC §5).

It answers the last user message of the thread, or the latest input given to the run. Plain text
`T` → `You said: T`, one delta per word (each word keeps the whitespace that follows it, so the
deltas concatenate to the reply exactly). `/stub {json}` scripts the turn: `reply`, `chunks`,
`delay_ms`, `tools`, `ask`, `fail`, `fail_times`, `usage`, `repeat`.

Order within a run: `ask` first (if not answered yet), then the `tools` turn (`repeat` times,
default once), then the reply. Without `reply` the reply is `You said: <input>` after an `ask`,
else `You said: <message>`. Its deltas are unmergeable: their count is part of the contract.

A script is checked before anything else (`script_check`): a key of the wrong type or outside
its bounds fails the call with `provider.bad_request` naming the key, so no script can stall a
runner (`delay_ms`), flood it (`chunks`, `repeat`, `tools`, `reply`) or overflow a total (`usage`).
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
MAX_REPLY_BYTES = 1024 * 1024
MAX_TOOLS = 64
MAX_USAGE = 10**9
USAGE_KEYS = ("input_tokens", "output_tokens", "cached_input_tokens")
# key → (accepted types, lowest, highest): numbers are checked against their bounds.
NUMBER_BOUNDS: dict[str, tuple[tuple[type, ...], int, int]] = {
    "delay_ms": ((int, float), 0, 60_000), "chunks": ((int,), 1, 10_000), "repeat": ((int,), 1, 1000),
    "fail_times": ((int,), 0, 1000),
}
MAX_ERROR_CLASS_CHARS = 64  # Run.error_class


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


def _bad(key: str, problem: str) -> ProviderError:
    return ProviderError("provider.bad_request", f"stub script: `{key}` {problem}")


def _check_number(key: str, value: Any) -> None:
    types, low, high = NUMBER_BOUNDS[key]
    if isinstance(value, bool) or not isinstance(value, types) or not low <= value <= high:
        kind = "an integer" if types == (int,) else "a number"
        raise _bad(key, f"must be {kind} from {low} to {high}")


def _check_text(key: str, value: Any, *, max_bytes: int = MAX_REPLY_BYTES) -> None:
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise _bad(key, f"must be a string of at most {max_bytes} bytes")


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise _bad("tools", f"must be a list of at most {MAX_TOOLS} tool calls")
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise _bad("tools", 'must hold objects {"name": "…", "arguments": {…}}')
        if not isinstance(tool.get("arguments", {}), dict):
            raise _bad("tools", "arguments must be an object")


def _check_usage(usage: Any) -> None:
    if not isinstance(usage, dict) or set(usage) - set(USAGE_KEYS):
        raise _bad("usage", f"must be an object of {', '.join(USAGE_KEYS)}")
    for value in usage.values():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_USAGE:
            raise _bad("usage", f"numbers must be integers from 0 to {MAX_USAGE}")


def script_check(keys: dict[str, Any]) -> None:
    """Raise ProviderError(provider.bad_request) naming the first key of the wrong type or out of bounds."""
    for key in NUMBER_BOUNDS:
        if key in keys:
            _check_number(key, keys[key])
    for key in ("reply", "ask"):
        if key in keys:
            _check_text(key, keys[key])
    if "fail" in keys:
        _check_text("fail", keys["fail"], max_bytes=MAX_ERROR_CLASS_CHARS)
    if "tools" in keys:
        _check_tools(keys["tools"])
    if "usage" in keys:
        _check_usage(keys["usage"])


class StubProvider:
    def __init__(self, model: str = "stub") -> None:
        self.model = model

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        thread_messages = [e for e in request.entries if e.role == "user" and not e.is_input]
        script = script_parse(thread_messages[-1].content if thread_messages else "")
        keys = script.keys
        script_check(keys)
        self._maybe_fail(keys, request.attempt)
        after = _entries_after(request.entries, thread_messages[-1] if thread_messages else None)
        inputs = [e.content for e in after if e.is_input]
        tool_turns = sum(1 for e in after if e.role == "assistant" and e.tool_calls)
        if keys.get("ask") and not inputs:
            output = keys["ask"]
            yield Ask(prompt=output)
        elif keys.get("tools") and tool_turns < keys.get("repeat", 1):
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
        if times is None or attempt <= times:
            raise ProviderError(fail, f"stub scripted failure ({fail})")

    @staticmethod
    async def _deltas(reply: str, keys: dict[str, Any]) -> AsyncIterator[TextDelta]:
        chunks = keys.get("chunks")
        pieces = split_chunks(reply, chunks) if chunks else split_words(reply)
        delay = keys.get("delay_ms", 0)
        for piece in pieces:
            if delay:
                await asyncio.sleep(delay / 1000)
            yield TextDelta(text=piece, mergeable=False)

    @staticmethod
    def _usage(request: TurnRequest, keys: dict[str, Any], output: str) -> Usage:
        scripted = keys.get("usage")
        if scripted is not None:
            return Usage(**{key: scripted.get(key, 0) for key in USAGE_KEYS})
        prompt = " ".join([request.system_prompt, *(e.content for e in request.entries)])
        return Usage(input_tokens=_count_tokens(prompt), output_tokens=_count_tokens(output))


def _entries_after(entries: list[Entry], anchor: Entry | None) -> list[Entry]:
    if anchor is None:
        return entries
    index = max(i for i, entry in enumerate(entries) if entry is anchor)
    return entries[index + 1:]


def _tool_calls(tools: list[dict[str, Any]]) -> list[ToolCall]:
    return [ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=tool["name"], arguments=tool.get("arguments", {}))
            for tool in tools]


def _reply(script: Script, inputs: list[str]) -> str:
    if "reply" in script.keys:
        return script.keys["reply"]
    if inputs:
        return f"You said: {inputs[-1]}"
    return f"You said: {script.text}"
