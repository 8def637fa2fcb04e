"""One model turn with retries and fallback: backoff on retryable errors, then the fallback route.

408/429/5xx/network errors (`RETRYABLE` classes) are retried up to `ARKLOOP_LLM_MAX_ATTEMPTS`
times per route with exponential backoff, each retry announced as `run.llm.retry`. When a
route gives up, its fallback is tried (announced as `run.route.selected`), then the error is
raised for `run.failed`. A stream that breaks after visible output was written is not retried:
the output is already in the log, and a second answer would not concatenate to one reply.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings

from arkloop.text import text_clean
from personas.models import Route
from runs.runner import telemetry
from runs.runner.providers import provider_for
from runs.runner.providers.base import Ask, ProviderError, TextDelta, ToolCall, TurnRequest, Usage


@dataclass
class TurnOutput:
    route: Route
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    ask: str | None = None
    usage: Usage = field(default_factory=Usage)
    emitted: bool = False


def max_attempts() -> int:
    return max(1, settings.ARKLOOP_LLM_MAX_ATTEMPTS)


def backoff_ms(failed_attempt: int) -> int:
    return settings.ARKLOOP_LLM_RETRY_BASE_MS * 2 ** (failed_attempt - 1)


class TurnCaller:
    """Calls the model for one turn on a chain of routes; the callbacks write the events."""

    def __init__(self, *, emit: Callable[[TextDelta], None],
                 on_retry: Callable[[dict], Awaitable[None]],
                 on_route: Callable[[Route], Awaitable[None]]) -> None:
        self.emit = emit
        self.on_retry = on_retry
        self.on_route = on_route

    async def call(self, routes: list[Route], request: TurnRequest) -> TurnOutput:
        calls_made, error = 0, None
        for index, route in enumerate(routes):
            if index:
                await self.on_route(route)
            for attempt in range(1, max_attempts() + 1):
                calls_made += 1
                request.attempt = calls_made
                try:
                    return await self._once(route, request)
                except ProviderError as exc:
                    error = exc
                    if getattr(exc, "after_output", False):
                        raise
                    if not exc.retryable or attempt == max_attempts():
                        break
                    await self._wait(attempt, exc)
        assert error is not None
        raise error

    async def _wait(self, attempt: int, error: ProviderError) -> None:
        delay = backoff_ms(attempt)
        await self.on_retry({"attempt": attempt, "max_attempts": max_attempts(), "delay_ms": delay,
                             "error_class": error.error_class})
        await asyncio.sleep(delay / 1000)

    async def _once(self, route: Route, request: TurnRequest) -> TurnOutput:
        output = TurnOutput(route=route)
        call = telemetry.chat_started(route)
        stream = provider_for(route).stream(request)
        try:
            async for item in stream:
                call.seen(item)
                self._take(output, item)
        except ProviderError as exc:
            call.failed(exc.error_class)
            exc.after_output = output.emitted
            raise
        finally:
            call.end()
            await stream.aclose()  # closes the HTTP stream, also when the run is cancelled
        return output

    def _take(self, output: TurnOutput, item: object) -> None:
        if isinstance(item, TextDelta):
            # Cleaned here already (storage cleans it anyway) so that the reply, the sum of the
            # deltas, is cleaned piece by piece exactly as they are: a surrogate pair split across
            # two deltas is two U+FFFD in both.
            item.text = text_clean(item.text)
            if item.channel is None:
                output.text += item.text
            output.emitted = True
            self.emit(item)
        elif isinstance(item, ToolCall):
            output.calls.append(item)
        elif isinstance(item, Ask):
            output.ask = item.prompt
        elif isinstance(item, Usage):
            output.usage = item
