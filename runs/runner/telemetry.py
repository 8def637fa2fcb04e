"""The runner's metrics and traces, behind the few calls the agent loop makes.

Metrics (arkloop.metrics, the RUNNER registry) are always kept; they cost a counter or two per
turn, tool call and run, and one boolean test per streamed item. Spans exist only when tracing is
on (arkloop.otel.ENABLED); otherwise every hook returns before touching OpenTelemetry.

The hooks, in the order a run meets them:
- `run_span(ctx, attempt)` around one execution of a run (after its context is loaded): the
  `invoke_agent <persona>` span, in the run's trace, and the queue wait of a first claim;
- `chat_started(route)` per provider call, then `.seen(item)` per streamed item, `.failed()`,
  `.end()`: the `chat <model>` span and the time to the first token;
- `turn_completed(route, usage, cost)` when a turn is committed: tokens and cost;
- `tool_started(call)` / `tool_ended(span, outcome)` around a tool's execution: the
  `execute_tool <tool>` span; `tool_counted(name, outcome)` for every recorded outcome;
- `run_finished(status, error_class)` when the runner writes a terminal event;
- `webhook_attempted(outcome)` after each webhook delivery attempt (the sender's `on_outcome`).
"""
from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from arkloop import otel
from arkloop.metrics import (
    LLM_COST,
    LLM_TOKENS,
    LLM_TTFT,
    RUN_QUEUE_WAIT,
    RUNNER_SLOTS,
    RUNS_FINISHED,
    TOOL_CALLS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_OUTCOMES,
)
from runs.runner.providers.base import ToolCall, Usage
from runs.runner.tools import REGISTRY

if TYPE_CHECKING:
    from personas.models import Route
    from runs.runner.context import RunContext

MAX_NAME = 200  # tool names come from the model: keep span names and attributes short
# GenAI attributes every span of a run carries (conversation, agent), set by run_span, per task.
_run_attributes: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("arkloop_run_attributes",
                                                                                        default=None)


# --- labels ------------------------------------------------------------------------------------

def tool_label(name: str) -> str:
    """A bounded label for a tool name: built-ins by name, every MCP tool `mcp`, anything else `other`
    (a model may call any name at all)."""
    if name in REGISTRY:
        return name
    return "mcp" if name.startswith("mcp__") else "other"


# --- a run ---------------------------------------------------------------------------------------

@contextmanager
def run_span(ctx: RunContext, *, attempt: int) -> Iterator[None]:
    """One execution of a run: its queue wait (first claim only) and its `invoke_agent` span."""
    run = ctx.run
    if attempt == 1:
        RUN_QUEUE_WAIT.observe(max(0.0, (timezone.now() - run.created_at).total_seconds()))
    if not otel.ENABLED:
        yield
        return
    from opentelemetry import trace

    agent = run.persona_id or "default"
    common = {"gen_ai.conversation.id": str(run.thread_id), "gen_ai.agent.name": agent}
    attributes = {**common, "gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": run.model,
                  "arkloop.run.id": str(run.pk), "arkloop.run.attempt": attempt}
    if ctx.routes:
        attributes["gen_ai.provider.name"] = ctx.routes[0].provider
    token = _run_attributes.set(common)
    with otel.forced_trace_id(run.trace_id):
        span = otel.tracer().start_span(f"invoke_agent {agent}", kind=trace.SpanKind.INTERNAL, attributes=attributes)
    try:
        with trace.use_span(span, end_on_exit=False):
            yield
    finally:
        usage = ctx.log.usage
        span.set_attributes({"gen_ai.usage.input_tokens": usage.input_tokens,
                             "gen_ai.usage.output_tokens": usage.output_tokens})
        span.end()
        _run_attributes.reset(token)


def run_finished(*, status: str, error_class: str = "") -> None:
    """The runner wrote a terminal event (or failed a run that waited too long for input)."""
    RUNS_FINISHED.labels(status, error_class).inc()
    if otel.ENABLED and error_class:
        from opentelemetry import trace

        span = trace.get_current_span()
        span.set_attribute("error.type", error_class)
        span.set_status(trace.StatusCode.ERROR, error_class)


def webhook_attempted(outcome: str) -> None:
    """A webhook delivery attempt's outcome (webhooks.sender); `lost` (our lease was taken over,
    nothing recorded: another sender attempts it again) is not counted."""
    if outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_DELIVERIES.labels(outcome).inc()


def track_slots(worker: Any) -> None:
    """`arkloop_runner_slots{state}` read from the worker at scrape time (no cost per run)."""
    RUNNER_SLOTS.labels("busy").set_function(lambda: len(worker.active))
    RUNNER_SLOTS.labels("free").set_function(lambda: max(0, worker.concurrency - len(worker.active)))


# --- a provider call -----------------------------------------------------------------------------

class ChatCall:
    """One provider call: the time to its first streamed item, and its span when tracing is on."""

    __slots__ = ("route", "started", "answered", "span", "token")

    def __init__(self, route: Route, span: Any = None, token: Any = None) -> None:
        self.route = route
        self.started = time.monotonic()
        self.answered = False
        self.span = span
        self.token = token  # the span is current while the call streams (the SDKs' own spans nest in it)

    def seen(self, item: object) -> None:
        if not self.answered:
            self.answered = True
            LLM_TTFT.labels(self.route.provider, self.route.model).observe(time.monotonic() - self.started)
        if self.span is not None and type(item) is Usage:
            self.span.set_attributes({"gen_ai.usage.input_tokens": item.input_tokens,
                                      "gen_ai.usage.output_tokens": item.output_tokens})

    def failed(self, error_class: str) -> None:
        if self.span is not None:
            from opentelemetry import trace

            self.span.set_attribute("error.type", error_class)
            self.span.set_status(trace.StatusCode.ERROR, error_class)

    def end(self) -> None:
        if self.span is not None:
            from opentelemetry import context

            context.detach(self.token)
            self.span.end()


def chat_started(route: Route) -> ChatCall:
    """Call `.end()` in the same task (a `finally:`): it ends the span and makes it no longer current."""
    if not otel.ENABLED:
        return ChatCall(route)
    from opentelemetry import context, trace

    attributes = {**(_run_attributes.get() or {}), "gen_ai.operation.name": "chat", "gen_ai.request.model": route.model,
                  "gen_ai.provider.name": route.provider, "arkloop.route.id": route.pk}
    span = otel.tracer().start_span(f"chat {route.model}", kind=trace.SpanKind.CLIENT, attributes=attributes)
    return ChatCall(route, span, context.attach(trace.set_span_in_context(span)))


def turn_completed(*, route: Route, usage: Usage, cost: Decimal) -> None:
    """A committed turn's tokens (input includes cached_input) and cost."""
    for type, count in (("input", usage.input_tokens), ("output", usage.output_tokens),
                        ("cached_input", usage.cached_input_tokens)):
        if count:
            LLM_TOKENS.labels(route.provider, route.model, type).inc(count)
    if cost:
        LLM_COST.labels(route.provider, route.model).inc(float(cost))


# --- a tool call ---------------------------------------------------------------------------------

def tool_started(call: ToolCall) -> Any:
    """The `execute_tool` span of a call about to run (None when tracing is off)."""
    if not otel.ENABLED:
        return None
    name = call.name[:MAX_NAME]
    attributes = {**(_run_attributes.get() or {}), "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                  "gen_ai.tool.call.id": call.id[:MAX_NAME]}
    return otel.tracer().start_span(f"execute_tool {name}", attributes=attributes)


def tool_ended(span: Any, outcome: dict[str, Any] | None) -> None:
    """End a tool's span; `outcome` None: the call was interrupted."""
    if span is None:
        return
    if outcome is None or "error" in outcome:
        from opentelemetry import trace

        error_class = str(outcome["error"].get("error_class", "tool.error")) if outcome else "interrupted"
        span.set_attribute("error.type", error_class)
        span.set_status(trace.StatusCode.ERROR, error_class)
    span.end()


def tool_counted(name: str, outcome: str) -> None:
    """`outcome`: ok, error or denied."""
    TOOL_CALLS.labels(tool_label(name), outcome).inc()
