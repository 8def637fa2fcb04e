"""Runs as the runner leaves them, for console, command and browser tests."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from arkloop.models import Org
from runs.events import event_append
from runs.models import Run
from threads.models import Message, Thread


def make_run(*, org: Org, user, model: str = "stub-1", persona_id: str = "default@1",
             status: str = "running", cost: str = "0", input_tokens: int = 0, output_tokens: int = 0,
             credits: int = 0, created_at: dt.datetime | None = None, thread: Thread | None = None,
             retry_of: Run | None = None, finished: dt.datetime | None = None) -> Run:
    """A run row as the runner leaves it (`status` and totals set directly; no events)."""
    thread = thread or Thread.objects.create(org=org, created_by=user, title=f"thread for {model}")
    run = Run.objects.create(org=org, thread=thread, created_by=user, model=model, persona_id=persona_id,
                             route_id="stub", trace_id="0" * 32, retry_of=retry_of,
                             total_input_tokens=input_tokens, total_output_tokens=output_tokens,
                             total_cost_usd=Decimal(cost), credits_used=credits)
    created_at = created_at or timezone.now()
    stamps = {"created_at": created_at, "status": status}
    if status in ("completed", "failed", "cancelled"):
        stamps[f"{status}_at"] = finished or created_at + dt.timedelta(seconds=2)
    Run.objects.filter(pk=run.pk).update(**stamps)
    run.refresh_from_db()
    return run


def play_run(run: Run, *, reply: str = "Hello there friend", tool: bool = True) -> None:
    """Append a realistic event log to a running run and finish it, as the runner would."""
    with transaction.atomic():
        event_append(run_id=run.pk, type="run.started", data={"persona_id": run.persona_id, "route_id": "stub"})
        event_append(run_id=run.pk, type="run.route.selected",
                     data={"route_id": "stub", "provider": "stub", "model": run.model})
        if tool:
            event_append(run_id=run.pk, type="tool.call", data={
                "tool_call_id": "call_1", "tool_name": "calculator", "arguments": {"expression": "6*7"}})
            event_append(run_id=run.pk, type="tool.result", data={
                "tool_call_id": "call_1", "tool_name": "calculator", "result": {"value": 42}})
        for word in reply.split(" "):
            event_append(run_id=run.pk, type="message.delta", data={"content": word + " ", "role": "assistant"})
        usage = {"input_tokens": 120, "output_tokens": 30, "cached_input_tokens": 20}
        event_append(run_id=run.pk, type="llm.turn.completed", data={"usage": usage, "cost_usd": "0.0015"})
        message = Message.objects.create(thread=run.thread, role="assistant", content=reply, run=run)
        event_append(run_id=run.pk, type="run.completed",
                     data={"usage": usage, "total_cost_usd": "0.0015", "credits_used": 2,
                           "message_id": str(message.pk)},
                     fields={"total_input_tokens": 120, "total_output_tokens": 30,
                             "total_cached_input_tokens": 20, "total_cost_usd": Decimal("0.0015"),
                             "credits_used": 2})
