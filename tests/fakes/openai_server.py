"""A fake OpenAI-compatible Chat Completions server: `POST /v1/chat/completions` streaming
`data: {chunk}` lines as the real API does (content deltas, tool-call fragments keyed by index,
a usage chunk when `stream_options.include_usage`, then `data: [DONE]`)."""
from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import FakeProvider, split_text


class FakeOpenAI(FakeProvider):
    path = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def error_body(self, status: int) -> dict[str, Any]:
        kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
        return {"error": {"message": f"fake error {status}", "type": kind, "param": None, "code": kind}}

    def stream(self, request: dict[str, Any], turn: dict[str, Any]):
        model = request.get("model", "fake")
        first = True
        for piece in split_text(turn.get("text", "")):
            yield _frame(model, {"role": "assistant", "content": piece} if first else {"content": piece})
            first = False
        for index, call in enumerate(turn.get("tool_calls", [])):
            arguments = json.dumps(call["arguments"])
            yield _frame(model, {"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                                 "function": {"name": call["name"], "arguments": ""}}]})
            for piece in split_text(arguments, 7):
                yield _frame(model, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield _frame(model, {}, finish="tool_calls" if turn.get("tool_calls") else "stop")
        if (request.get("stream_options") or {}).get("include_usage"):
            usage = turn["usage"]
            yield _data({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
                         "choices": [], "usage": {
                             "prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
                             "total_tokens": usage["input_tokens"] + usage["output_tokens"],
                             "prompt_tokens_details": {"cached_tokens": usage.get("cached_input_tokens", 0)}}})
        yield "data: [DONE]\n\n"


def _frame(model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    return _data({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"
