"""The one small interface every provider implements, and the neutral shapes it speaks.

A provider turns one `TurnRequest` (system prompt, conversation, tool specs, budgets) into an
async stream of items: `TextDelta`s as the model writes, then `ToolCall`s, an optional `Ask`
(the stub's scripted question), and one `Usage`. Errors are `ProviderError`s carrying an error
class of SPEC §4; whether one is retried is decided by the caller (`retry.py`), not here.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

RETRYABLE = frozenset({"provider.unavailable", "provider.rate_limited", "provider.timeout"})


@dataclass
class TextDelta:
    text: str
    channel: str | None = None  # "thinking" for reasoning text, None for the visible reply
    # Real models stream tokens: those may be merged into fewer events. The stub's deltas are
    # part of its contract (one per word, `chunks`), so it marks them unmergeable.
    mergeable: bool = True


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Ask:
    """The model asks the user a question outside any tool (the stub's `ask`)."""

    prompt: str


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cached_input_tokens": self.cached_input_tokens}


StreamItem = TextDelta | ToolCall | Ask | Usage


@dataclass
class Entry:
    """One message of the conversation, provider-neutral.

    role: "user" (from the thread, or `is_input` for an answer given to a waiting run),
    "assistant" (text and/or tool calls), or "tool" (a tool's outcome for `tool_call_id`).
    """

    role: str
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    tool_name: str = ""
    is_input: bool = False


@dataclass
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class TurnRequest:
    system_prompt: str
    entries: list[Entry]
    tools: list[ToolSpec]
    max_output_tokens: int | None = None
    temperature: float | None = None
    # 1-based count of calls made for this turn so far, across retries and fallback routes.
    attempt: int = 1


class ProviderError(Exception):
    """A failed model call. `message` is safe to show: no secret, no raw provider body."""

    def __init__(self, error_class: str, message: str) -> None:
        self.error_class = error_class
        self.message = message
        super().__init__(f"{error_class}: {message}")

    @property
    def retryable(self) -> bool:
        return self.error_class in RETRYABLE


class Provider(Protocol):
    def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        """Yield the turn's items; raise ProviderError on failure. Closing the iterator aborts the call."""
        ...


class SdkProvider:
    """What the two official-SDK providers share: SDK errors → ProviderError, client closed at the end.

    Both SDKs (openai, anthropic) raise the same family of exceptions; a subclass names its SDK
    module, a label for messages, a `client` and implements `_stream`. Messages never carry the
    provider's response body or the key.
    """

    sdk: Any
    label: str
    client: Any

    async def stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        try:
            async for item in self._stream(request):
                yield item
        except self.sdk.APIStatusError as exc:
            raise ProviderError(error_class_for_status(exc.status_code),
                                f"{self.label} answered HTTP {exc.status_code}") from None
        except (self.sdk.APIConnectionError, self.sdk.APITimeoutError):
            raise ProviderError("provider.unavailable", f"{self.label} unreachable") from None
        finally:
            await self.client.close()

    def _stream(self, request: TurnRequest) -> AsyncIterator[StreamItem]:
        raise NotImplementedError


def error_class_for_status(status: int) -> str:
    """An HTTP status of a provider → the error class of SPEC §4 (408/429/5xx are retryable)."""
    if status == 429:
        return "provider.rate_limited"
    if status in (401, 403):
        return "provider.auth_failed"
    if status == 408 or status >= 500:
        return "provider.unavailable"
    return "provider.bad_request"
