"""The outbox: deliveries are recorded in the transaction of their event, and only where wanted;
the retry schedule and `Retry-After`."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from runs.events import event_append
from runs.models import RunStatus
from tests.runs.stories import finish, park_for_input, start_run, thread_with_question
from tests.webhooks.conftest import create_webhook
from webhooks.models import WebhookDelivery
from webhooks.outbox import Attempt, AttemptResult, DeliveryOutcome, delivery_decide, parse_retry_after, retry_delay


def test_a_terminal_event_records_one_delivery_per_subscribed_webhook(alice, charlie):
    everything = create_webhook(alice)
    create_webhook(alice, events=["run.failed"])
    switched_off = create_webhook(alice)
    alice.client.patch(f"/v1/webhooks/{switched_off['id']}", {"enabled": False})
    create_webhook(charlie)  # another org's
    run_id = start_run(alice, thread_with_question(alice))
    park_for_input(run_id)
    finish(run_id)
    deliveries = WebhookDelivery.objects.order_by("seq")
    assert [(str(d.webhook_id), d.event_type) for d in deliveries] == [
        (everything["id"], "run.waiting_for_input"), (everything["id"], "run.completed")]


def test_the_body_is_the_run_object_as_the_event_left_it(alice):
    create_webhook(alice)
    run_id = start_run(alice, thread_with_question(alice))
    park_for_input(run_id)
    event_append(run_id=run_id, type="run.input_provided", data={"content": "x"}, status=RunStatus.RUNNING)
    finish(run_id)
    waiting, completed = (json.loads(d.body) for d in WebhookDelivery.objects.order_by("seq"))
    run_object = alice.client.get(f"/v1/runs/{run_id}").json()
    assert completed["data"] == {**run_object, "seq": 4} and completed["type"] == "run.completed"
    assert waiting["data"]["status"] == "waiting_for_input" and waiting["data"]["seq"] == 2
    assert set(waiting["data"]) == set(run_object) | {"seq"}
    assert waiting["timestamp"].endswith("Z") and waiting["timestamp"] < completed["timestamp"]


def test_a_rolled_back_event_leaves_no_delivery(alice):
    create_webhook(alice)
    run_id = start_run(alice, thread_with_question(alice))
    with pytest.raises(RuntimeError), transaction.atomic():
        finish(run_id)
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the appending transaction fails after the event")
    assert WebhookDelivery.objects.count() == 0


def test_an_org_without_webhooks_pays_one_query(alice, charlie):
    create_webhook(charlie)
    run_id = start_run(alice, thread_with_question(alice))
    with CaptureQueriesContext(connection) as queries:
        finish(run_id)
    touching = [q["sql"] for q in queries.captured_queries if "webhooks_" in q["sql"]]
    assert len(touching) == 1 and touching[0].lstrip().upper().startswith("SELECT")
    assert WebhookDelivery.objects.count() == 0


def test_the_api_cancel_records_its_delivery_too(alice):
    webhook = create_webhook(alice, events=["run.cancelled"])
    run_id = start_run(alice, thread_with_question(alice))
    assert alice.client.post(f"/v1/runs/{run_id}:cancel").status_code == 200
    assert WebhookDelivery.objects.get(webhook_id=webhook["id"]).event_type == "run.cancelled"


# --- what an answer means ----------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def attempt(number: int = 1, window: timedelta = timedelta(hours=24)) -> Attempt:
    return Attempt(delivery_id="d", webhook_id="w", url="https://x.example.com/", body="{}", number=number,
                   retry_until=NOW + window, secrets=["whsec_AAAA"])


@pytest.mark.parametrize(("number", "base"), [(1, 5), (2, 30), (3, 120), (4, 600), (5, 1800), (6, 3600),
                                              (7, 7200), (20, 7200)])
def test_retry_delays_follow_the_schedule_with_jitter(number, base):
    delays = [retry_delay(number) for _ in range(200)]
    assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100  # jittered, not in step


def test_answers_decide_the_outcome():
    assert delivery_decide(attempt=attempt(), result=AttemptResult(status_code=204), now=NOW)[0] == "delivered"
    assert delivery_decide(attempt=attempt(), result=AttemptResult(status_code=410), now=NOW)[0] == "disabled"
    for result in (AttemptResult(status_code=500), AttemptResult(status_code=302), AttemptResult(error="timeout")):
        outcome, fields = delivery_decide(attempt=attempt(), result=result, now=NOW)
        assert outcome == DeliveryOutcome.RETRY and NOW + timedelta(seconds=4) <= fields["next_attempt_at"]
    late = delivery_decide(attempt=attempt(7, window=timedelta(hours=1)), result=AttemptResult(status_code=500),
                           now=NOW)
    assert late == (DeliveryOutcome.FAILED, {"status": "failed", "next_attempt_at": None})


def test_retry_after_replaces_the_schedule():
    outcome, fields = delivery_decide(attempt=attempt(), result=AttemptResult(status_code=503, retry_after=120),
                                      now=NOW)
    assert outcome == DeliveryOutcome.RETRY and fields["next_attempt_at"] == NOW + timedelta(seconds=120)
    beyond = AttemptResult(status_code=429, retry_after=25 * 3600)
    assert delivery_decide(attempt=attempt(), result=beyond, now=NOW)[0] == DeliveryOutcome.FAILED


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0), (" 7 ", 7.0), ("0", 1.0), ("Thu, 01 Jan 2026 00:01:00 GMT", 60.0),
    ("Wed, 31 Dec 2025 00:00:00 GMT", 1.0), ("soon", None), ("-5", None), ("1" * 40, None), ("", None), (None, None),
])
def test_retry_after_header_values(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds
