"""`openai`: any OpenAI-compatible Chat Completions endpoint, through the official async SDK.

Streams with `stream_options.include_usage` so the last chunk carries usage (cached tokens in
`prompt_tokens_details.cached_tokens`, already counted in `prompt_tokens`). Tool calls arrive as
fragments keyed by `index`; they are assembled and yielded when the stream ends. The SDK's own
retries are off: retries are ours, so each one is visible as `run.llm.retry`.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai

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


class OpenAIChatProvider(SdkProvider):
    sdk = openai
    label = "openai-compatible endpoint"

    def __init__(self, *, model: str, base_url: str, api_key: str | None) -> None:
        self.model = model
        # Local servers (vLLM, Ollama) need no key, but the SDK insists on one.
        self.client = openai.AsyncOpenAI(api_key=api_key or "not-needed", base_url=base_url or None,
                                         max_retries=0, timeout=TIMEOUT_SECONDS)

    async def _stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        stream = await self.client.chat.completions.create(**self._params(request))
        calls: dict[int, dict[str, str]] = {}
        usage = Usage()
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield TextDelta(text=choice.delta.content)
                    for fragment in choice.delta.tool_calls or []:
                        _merge_fragment(calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""}),
                                        fragment)
        for index in sorted(calls):
            yield _tool_call(calls[index])
        yield usage

    def _params(self, request: TurnRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": messages_for(request), "stream": True,
                                  "stream_options": {"include_usage": True}}
        if request.tools:
            params["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                                 "parameters": t.parameters}} for t in request.tools]
        if request.max_output_tokens:
            params["max_tokens"] = request.max_output_tokens
        if request.temperature is not None:
            params["temperature"] = request.temperature
        return params


def messages_for(request: TurnRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system_prompt:
        messages.append({"role": "system", "content": request.system_prompt})
    messages.extend(_message(entry) for entry in request.entries)
    return messages


def _message(entry: Entry) -> dict[str, Any]:
    if entry.role == "tool":
        return {"role": "tool", "tool_call_id": entry.tool_call_id, "content": entry.content}
    if entry.role == "assistant" and entry.tool_calls:
        return {"role": "assistant", "content": entry.content or None,
                "tool_calls": [{"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                               for c in entry.tool_calls]}
    return {"role": entry.role, "content": entry.content}


def _merge_fragment(call: dict[str, str], fragment: Any) -> None:
    call["id"] = fragment.id or call["id"]
    if fragment.function is not None:
        call["name"] += fragment.function.name or ""
        call["arguments"] += fragment.function.arguments or ""


def _tool_call(call: dict[str, str]) -> ToolCall:
    try:
        arguments = json.loads(call["arguments"] or "{}")
    except ValueError:
        arguments = {"_unparsed": call["arguments"]}
    if not isinstance(arguments, dict):
        arguments = {"value": arguments}
    return ToolCall(id=call["id"], name=call["name"], arguments=arguments)


def _usage(usage: Any) -> Usage:
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(input_tokens=usage.prompt_tokens or 0, output_tokens=usage.completion_tokens or 0,
                 cached_input_tokens=cached)
