"""The data the browser test (and its screenshots) show, made by a real `runagents` process.

Two orgs' users start runs through the API on two priced stub routes; the runner executes them
(tool calls, streamed replies, a question answered, a provider failure, a cancel), so every run's
totals are the sums of its own `llm.turn.completed` events. Those runs are then moved back over
the last two weeks (run, events, thread and messages shifted together), so the runs list and the
usage chart have history. The live run is started later by the test itself (`start_run`).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import F
from rest_framework.test import APIClient

from arkloop.services import api_key_create, membership_ensure
from personas.models import Route
from runs.models import Run, RunEvent
from threads.models import Message, Thread

STAFF_PASSWORD = "staff-password-123"
TERMINAL = ("completed", "failed", "cancelled")
# How many days back each background run moves (some days get two runs, some none).
DAYS_BACK = (1, 2, 2, 3, 5, 6, 6, 8, 9, 11, 13)


@dataclass
class Person:
    email: str
    client: APIClient


@dataclass
class Story:
    staff_username: str
    staff_password: str
    alice: Person
    bob: Person
    carol: Person
    background: list[str] = field(default_factory=list)  # run ids, oldest last


def stub(**script: Any) -> str:
    return "/stub " + json.dumps(script)


def usage(input_tokens: int, output_tokens: int, cached: int = 0) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cached_input_tokens": cached}


def person(*, org: str, email: str, role: str) -> Person:
    membership = membership_ensure(org_slug=org, email=email, role=role)
    _, key = api_key_create(membership=membership, name=f"{email} browser story")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return Person(email=email, client=client)


def start_run(who: Person, content: str, *, title: str, route_id: str) -> tuple[str, str]:
    """A thread, its first message and a run over it, through the API; returns (thread_id, run_id)."""
    thread = who.client.post("/v1/threads", {"title": title}, format="json")
    assert thread.status_code == 201, thread.content
    thread_id = thread.json()["id"]
    message = who.client.post(f"/v1/threads/{thread_id}/messages", {"content": content}, format="json")
    assert message.status_code == 201, message.content
    run = who.client.post(f"/v1/threads/{thread_id}/runs", {"route_id": route_id}, format="json")
    assert run.status_code == 201, run.content
    return thread_id, run.json()["run_id"]


def build_story() -> Story:
    """The staff account, the people and two priced stub routes."""
    get_user_model().objects.create_superuser(username="staff", email="staff@arkloop.test", password=STAFF_PASSWORD)
    # Prices in USD per million tokens, as for real models of these sizes.
    Route.objects.create(id="stub-mini", provider="stub", model="stub-mini", price_input=Decimal("0.15"),
                         price_cached_input=Decimal("0.075"), price_output=Decimal("0.6"))
    Route.objects.create(id="stub-large", provider="stub", model="stub-large", price_input=Decimal("3"),
                         price_cached_input=Decimal("0.3"), price_output=Decimal("15"))
    story = Story(staff_username="staff", staff_password=STAFF_PASSWORD,
                  alice=person(org="acme", email="alice@acme.test", role="admin"),
                  bob=person(org="acme", email="bob@acme.test", role="member"),
                  carol=person(org="globex", email="carol@globex.test", role="admin"))
    return story


def start_background(story: Story) -> None:
    """Start the background runs through the API (the runner should be up, so their durations are
    the runs' own)."""
    calc = [{"name": "calculator", "arguments": {"expression": "1200*0.15"}}]
    plan = [
        (story.alice, "Summarise the release notes", "stub-large",
         stub(reply="Three fixes and one new command.", usage=usage(2400, 180, 1200))),
        (story.carol, "Quarterly costs", "stub-mini",
         stub(tools=calc, reply="That is 180 dollars.", usage=usage(1650, 90, 800))),
        (story.bob, "Greeting", "stub-large", "hello there"),
        (story.carol, "Deployment checklist", "stub-large",
         stub(reply="Migrate, collect static files, restart the runners.", usage=usage(3100, 260, 2048))),
        (story.alice, "Which region?", "stub-large",
         stub(ask="Which region should I check?", reply="eu-west is healthy.", usage=usage(900, 40))),
        (story.bob, "Bad request", "stub-mini", stub(fail="provider.bad_request")),
        (story.carol, "Translate the FAQ", "stub-large",
         stub(reply="Translating section by section " * 6, chunks=30, delay_ms=100, usage=usage(2000, 300))),
        (story.alice, "Echo test", "stub-mini",
         stub(tools=[{"name": "echo", "arguments": {"text": "ping"}}], reply="pong", usage=usage(700, 20))),
        (story.bob, "Time zones", "stub-large",
         stub(tools=[{"name": "current_time", "arguments": {}}], reply="It is morning in Lisbon.",
              usage=usage(1200, 60, 512))),
        (story.carol, "Invoice total", "stub-mini",
         stub(tools=[{"name": "calculator", "arguments": {"expression": "19*12+40"}}], reply="268 in total.",
              usage=usage(1400, 70))),
        (story.alice, "Long answer", "stub-large",
         stub(reply="A long, careful answer about caching.", usage=usage(5200, 640, 4096))),
    ]
    for who, title, route_id, content in plan:
        story.background.append(start_run(who, content, title=title, route_id=route_id)[1])


def settle_background(story: Story, wait_until) -> None:
    """Answer the question, cancel the long translation once it streams, wait for every run to end."""
    asking, translating = story.background[4], story.background[6]
    wait_until(lambda: Run.objects.get(pk=asking).status == "waiting_for_input", what="the question")
    answered = story.alice.client.post(f"/v1/runs/{asking}/input", {"content": "eu-west"}, format="json")
    assert answered.status_code == 200, answered.content
    wait_until(lambda: RunEvent.objects.filter(run_id=translating, type="message.delta").exists(),
               what="the translation to stream")
    cancelled = story.carol.client.post(f"/v1/runs/{translating}:cancel", format="json")
    assert cancelled.status_code in (200, 202), cancelled.content
    wait_until(lambda: not Run.objects.filter(pk__in=story.background).exclude(status__in=TERMINAL).exists(),
               what="the background runs to end")


def move_back(story: Story) -> None:
    """Spread the finished background runs over the last two weeks (DAYS_BACK, plus a few hours),
    each with its events, thread and messages, so times and durations stay consistent."""
    for n, (run_id, days) in enumerate(zip(story.background, DAYS_BACK, strict=True)):
        delta = dt.timedelta(days=days, hours=(3 * n) % 7)
        run = Run.objects.get(pk=run_id)
        Run.objects.filter(pk=run_id).update(
            created_at=F("created_at") - delta, completed_at=F("completed_at") - delta,
            failed_at=F("failed_at") - delta, cancelled_at=F("cancelled_at") - delta)
        RunEvent.objects.filter(run_id=run_id).update(created_at=F("created_at") - delta)
        Thread.objects.filter(pk=run.thread_id).update(created_at=F("created_at") - delta,
                                                       updated_at=F("updated_at") - delta)
        Message.objects.filter(thread_id=run.thread_id).update(created_at=F("created_at") - delta)


def turn_totals(run_id: str) -> tuple[int, int]:
    """Input and output tokens summed over the run's `llm.turn.completed` events."""
    turns = RunEvent.objects.filter(run_id=run_id, type="llm.turn.completed").values_list("data", flat=True)
    return (sum(t["usage"]["input_tokens"] for t in turns), sum(t["usage"]["output_tokens"] for t in turns))
