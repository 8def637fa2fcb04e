"""The data the browser test (and its screenshots) show: two orgs' runs over two weeks, one of them
with a full tool-using timeline, one still live, and a staff superuser to log in with."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from arkloop.services import membership_ensure
from runs.events import event_append
from runs.models import Run
from tests.console.builders import make_run, play_run
from threads.models import Thread

MODELS = ("gpt-4o-mini", "claude-sonnet-4", "stub-echo")
STATUSES = ("completed", "completed", "completed", "failed", "cancelled")


@dataclass
class Story:
    staff_username: str
    staff_password: str
    live_run: Run
    run_count: int
    total_cost: Decimal
    total_credits: int
    total_input_tokens: int
    first_day: dt.date


def build_story() -> Story:
    """Create the story's rows and return what the pages should show."""
    password = "staff-password-123"
    get_user_model().objects.create_superuser(username="staff", email="staff@arkloop.test", password=password)
    alice = membership_ensure(org_slug="acme", email="alice@acme.test", role="admin")
    bob = membership_ensure(org_slug="acme", email="bob@acme.test", role="member")
    carol = membership_ensure(org_slug="globex", email="carol@globex.test", role="admin")
    now = timezone.now()
    runs = []
    for n in range(14):
        member = (alice, bob, carol)[n % 3]
        cost = Decimal(n % 5 + 1) * Decimal("0.0125")
        runs.append(make_run(org=member.org, user=member.user, model=MODELS[n % 3], status=STATUSES[n % 5],
                             cost=str(cost), input_tokens=900 + 137 * n, output_tokens=120 + 11 * n,
                             credits=int(cost * 1000), persona_id=("default@1", "careful@1")[n % 2],
                             created_at=now - dt.timedelta(days=n, hours=n % 4)))
    answered, live = _live_run(alice)
    runs += [answered, live]
    runs = [Run.objects.get(pk=run.pk) for run in runs]
    return Story(staff_username="staff", staff_password=password, live_run=live, run_count=len(runs),
                 total_cost=sum((r.total_cost_usd for r in runs), Decimal(0)),
                 total_credits=sum(r.credits_used for r in runs),
                 total_input_tokens=sum(r.total_input_tokens for r in runs),
                 first_day=min(r.created_at for r in runs).date())


def _live_run(member) -> tuple[Run, Run]:
    """A finished run and its retry, mid-way: a calculator call and its result are in, the reply is
    about to stream."""
    thread = Thread.objects.create(org=member.org, created_by=member.user, title="What is 6 × 7?")
    finished = make_run(org=member.org, user=member.user, thread=thread, model="gpt-4o-mini")
    play_run(finished, reply="Six times seven is 42.")
    run = make_run(org=member.org, user=member.user, thread=thread, model="gpt-4o-mini", retry_of=finished)
    with transaction.atomic():
        event_append(run_id=run.pk, type="run.started", data={"persona_id": "default@1", "route_id": "openai-mini",
                                                              "retry_of": str(finished.pk)})
        event_append(run_id=run.pk, type="run.route.selected",
                     data={"route_id": "openai-mini", "provider": "openai", "model": "gpt-4o-mini"})
        event_append(run_id=run.pk, type="tool.call", data={"tool_call_id": "call_7", "tool_name": "calculator",
                                                             "arguments": {"expression": "6 * 7"}})
        event_append(run_id=run.pk, type="tool.result", data={"tool_call_id": "call_7", "tool_name": "calculator",
                                                               "result": {"value": 42, "steps": ["6 * 7 = 42"] * 30}})
        event_append(run_id=run.pk, type="llm.turn.completed", data={
            "usage": {"input_tokens": 310, "output_tokens": 12, "cached_input_tokens": 0}, "cost_usd": "0.0006"})
    return finished, run
