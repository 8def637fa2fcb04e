"""`anthropic`: the Messages API through the official async SDK, streaming raw events.

Usage: Anthropic's `input_tokens` excludes cache reads and writes, so the run's input is
`input_tokens + cache_read_input_tokens + cache_creation_input_tokens` and its cached input is
`cache_read_input_tokens` — the same meaning as OpenAI's, so one cost formula fits both.
Thinking deltas are yielded on the `thinking` channel. SDK retries are off (ours are visible).
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from runs.runner.providers.base import (
    Entry,
    SdkProvider,
    StreamItem,
    TextDelta,
    ToolCall,
    TurnRequest,
    Usage,
)

TIMEOUT_SECONDS = 120.0
DEFAULT_MAX_TOKENS = 1024


class AnthropicMessagesProvider(SdkProvider):
    sdk = anthropic
    label = "anthropic endpoint"

    def __init__(self, *, model: str, base_url: str, api_key: str | None) -> None:
        self.model = model
        self.client = anthropic.AsyncAnthropic(api_key=api_key or "not-needed", base_url=base_url or None,
                                               max_retries=0, timeout=TIMEOUT_SECONDS)

    async def _stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        stream = await self.client.messages.create(**self._params(request))
        blocks: dict[int, dict[str, str]] = {}
        counts = {"input": 0, "cache_read": 0, "cache_write": 0, "output": 0}
        async with stream:
            async for event in stream:
                if event.type == "message_start":
                    _count(counts, event.message.usage)
                elif event.type == "message_delta":
                    _count(counts, event.usage)
                elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                    block = event.content_block
                    blocks[event.index] = {"id": block.id, "name": block.name, "json": ""}
                elif event.type == "content_block_delta":
                    item = _delta(event, blocks)
                    if item is not None:
                        yield item
        for index in sorted(blocks):
            yield _tool_call(blocks[index])
        yield Usage(input_tokens=counts["input"] + counts["cache_read"] + counts["cache_write"],
                    output_tokens=counts["output"], cached_input_tokens=counts["cache_read"])

    def _params(self, request: TurnRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": messages_for(request.entries), "stream": True,
                                  "max_tokens": request.max_output_tokens or DEFAULT_MAX_TOKENS}
        if request.system_prompt:
            params["system"] = request.system_prompt
        if request.tools:
            params["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                               for t in request.tools]
        if request.temperature is not None:
            params["temperature"] = request.temperature
        return params


def _count(counts: dict[str, int], usage: Any) -> None:
    """Usage fields are cumulative: a later event's value replaces an earlier one."""
    for key, field in (("input", "input_tokens"), ("cache_read", "cache_read_input_tokens"),
                       ("cache_write", "cache_creation_input_tokens"), ("output", "output_tokens")):
        value = getattr(usage, field, None)
        if value is not None:
            counts[key] = value


def _delta(event: Any, blocks: dict[int, dict[str, str]]) -> TextDelta | None:
    delta = event.delta
    if delta.type == "text_delta" and delta.text:
        return TextDelta(text=delta.text)
    if delta.type == "thinking_delta" and delta.thinking:
        return TextDelta(text=delta.thinking, channel="thinking")
    if delta.type == "input_json_delta" and event.index in blocks:
        blocks[event.index]["json"] += delta.partial_json
    return None


def _tool_call(block: dict[str, str]) -> ToolCall:
    try:
        arguments = json.loads(block["json"] or "{}")
    except ValueError:
        arguments = {"_unparsed": block["json"]}
    return ToolCall(id=block["id"], name=block["name"], arguments=arguments if isinstance(arguments, dict) else {})


def messages_for(entries: list[Entry]) -> list[dict[str, Any]]:
    """Neutral entries → Messages API turns; consecutive tool results share one user turn."""
    messages: list[dict[str, Any]] = []
    for entry in entries:
        message = _message(entry)
        if messages and messages[-1]["role"] == message["role"] == "user" and isinstance(message["content"], list) \
                and isinstance(messages[-1]["content"], list):
            messages[-1]["content"].extend(message["content"])
        else:
            messages.append(message)
    return messages


def _message(entry: Entry) -> dict[str, Any]:
    if entry.role == "tool":
        return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": entry.tool_call_id,
                                             "content": entry.content}]}
    if entry.role == "assistant" and entry.tool_calls:
        content: list[dict[str, Any]] = [{"type": "text", "text": entry.content}] if entry.content else []
        content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in entry.tool_calls]
        return {"role": "assistant", "content": content}
    return {"role": entry.role, "content": entry.content}
