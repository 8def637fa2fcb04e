"""A fake Anthropic Messages server: `POST /v1/messages` streaming named SSE events as the real API
does (message_start with usage incl. cache reads, content blocks for text and tool_use with
input_json_delta fragments, message_delta with output tokens and stop_reason, message_stop).

Like the real API, `input_tokens` counts only uncached input: a turn's `cached_input_tokens`
are reported as `cache_read_input_tokens` and subtracted."""
from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import FakeProvider, split_text


class FakeAnthropic(FakeProvider):
    path = "/v1/messages"

    @property
    def base_url(self) -> str:
        return self.root

    def error_body(self, status: int) -> dict[str, Any]:
        kind = {429: "rate_limit_error", 401: "authentication_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": f"fake error {status}"}}

    def stream(self, request: dict[str, Any], turn: dict[str, Any]):
        usage = turn["usage"]
        cached = usage.get("cached_input_tokens", 0)
        yield _event("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": request.get("model"),
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": usage["input_tokens"] - cached, "output_tokens": 1,
                      "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}}})
        index = 0
        if turn.get("text"):
            yield from _text_block(index, turn["text"])
            index += 1
        for call in turn.get("tool_calls", []):
            yield from _tool_block(index, call)
            index += 1
        yield _event("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "tool_use" if turn.get("tool_calls") else "end_turn",
                                                 "stop_sequence": None},
                                       "usage": {"output_tokens": usage["output_tokens"]}})
        yield _event("message_stop", {"type": "message_stop"})


def _text_block(index: int, text: str):
    yield _event("content_block_start", {"type": "content_block_start", "index": index,
                                         "content_block": {"type": "text", "text": ""}})
    for piece in split_text(text):
        yield _event("content_block_delta", {"type": "content_block_delta", "index": index,
                                             "delta": {"type": "text_delta", "text": piece}})
    yield _event("content_block_stop", {"type": "content_block_stop", "index": index})


def _tool_block(index: int, call: dict[str, Any]):
    yield _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
        "type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}})
    for piece in split_text(json.dumps(call["arguments"]), 7):
        yield _event("content_block_delta", {"type": "content_block_delta", "index": index,
                                             "delta": {"type": "input_json_delta", "partial_json": piece}})
    yield _event("content_block_stop", {"type": "content_block_stop", "index": index})


def _event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n"
