"""Deliveries end to end: real `runagents` processes POST to real HTTP receivers started here.

These stories share one runner (ARKLOOP_ALLOW_PRIVATE_URLS on, for receivers on 127.0.0.1); the
stories that need runners of their own are in test_delivery_recovery.py.
"""
from __future__ import annotations

import threading
import time

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from runs.models import Run
from tests.fakes.webhook_receiver import Answer, Received, WebhookReceiver
from tests.runner.helpers import start, stub
from tests.runner.processes import RunnerProcess, wait_until
from tests.webhooks.conftest import create_webhook
from webhooks.models import WebhookDelivery
from webhooks.sender import PER_WEBHOOK_IN_FLIGHT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def runner(database_url):
    with RunnerProcess(database_url, ARKLOOP_ALLOW_PRIVATE_URLS="true") as process:
        yield process


@pytest.fixture
def receiver():
    with WebhookReceiver() as receiver:
        yield receiver


def verified(received: Received, secret: str) -> dict:
    """The payload, after `standardwebhooks`' own verifier accepted the signature."""
    return StandardWebhook(secret).verify(received.body, received.headers)


def delivery(webhook: dict, run_id: str, **more: str) -> WebhookDelivery:
    return WebhookDelivery.objects.get(webhook_id=webhook["id"], run_id=run_id, **more)


def wait_status(webhook: dict, run_id: str, status: str) -> WebhookDelivery:
    wait_until(lambda: WebhookDelivery.objects.filter(webhook_id=webhook["id"], run_id=run_id,
                                                      status=status).exists(), what=f"a {status} delivery")
    return delivery(webhook, run_id)


def test_each_event_type_arrives_signed_to_the_webhooks_that_want_it(runner, alice, receiver):
    everything = create_webhook(alice, url=receiver.url)
    failures = create_webhook(alice, url=f"{receiver.root}/failures", events=["run.failed"])
    _, completed = start(alice, "hello hooks")
    _, failed = start(alice, stub(fail="provider.bad_request"))
    _, waiting = start(alice, stub(ask="Which city?"))
    wait_until(lambda: Run.objects.get(pk=waiting).status == "waiting_for_input", what="the question")
    wait_status(everything, waiting, "delivered")
    assert alice.client.post(f"/v1/runs/{waiting}:cancel").status_code == 200
    received = receiver.wait_for(5)

    by_type = {}
    for item in receiver.at("/hook"):
        payload = verified(item, everything["secret"])
        by_type[(payload["type"], payload["data"]["run_id"])] = payload
        assert item.headers["content-type"] == "application/json"
        assert abs(int(item.headers["webhook-timestamp"]) - time.time()) < 300
        sent = delivery(everything, payload["data"]["run_id"], event_type=payload["type"])
        assert item.webhook_id == f"msg_{sent.pk}"
    assert set(by_type) == {("run.completed", completed), ("run.failed", failed),
                            ("run.waiting_for_input", waiting), ("run.cancelled", waiting)}
    for type, run_id in (("run.completed", completed), ("run.failed", failed), ("run.cancelled", waiting)):
        assert by_type[(type, run_id)]["data"] == {**alice.client.get(f"/v1/runs/{run_id}").json(),
                                                   "seq": by_type[(type, run_id)]["data"]["seq"]}
    assert by_type[("run.waiting_for_input", waiting)]["data"]["status"] == "waiting_for_input"
    [only_failure] = receiver.at("/failures")
    assert verified(only_failure, failures["secret"])["data"]["run_id"] == failed
    with pytest.raises(WebhookVerificationError):
        verified(only_failure, everything["secret"])  # another webhook's secret does not verify it
    assert len(received) == 5


def test_a_500_is_retried_with_the_same_webhook_id(runner, alice, receiver):
    webhook = create_webhook(alice, url=receiver.url)
    receiver.answers = [Answer(500)]
    _, run_id = start(alice, "retry me")
    first, second = receiver.wait_for(2, timeout=30)
    assert first.webhook_id == second.webhook_id == f"msg_{delivery(webhook, run_id).pk}"
    assert verified(first, webhook["secret"]) == verified(second, webhook["secret"])
    done = wait_status(webhook, run_id, "delivered")
    assert (done.attempts, done.last_status_code, done.next_attempt_at) == (2, 200, None)


def test_retry_after_is_honoured_and_redeliver_sends_at_once(runner, alice, receiver):
    webhook = create_webhook(alice, url=receiver.url)
    receiver.answers = [Answer(503, headers={"Retry-After": "3600"})]
    _, run_id = start(alice, "later please")
    wait_until(lambda: delivery_exists(webhook, run_id) and delivery(webhook, run_id).last_status_code == 503,
               what="the 503 to be recorded")
    waiting = delivery(webhook, run_id)
    assert waiting.status == "pending"
    assert 3600 <= (waiting.next_attempt_at - waiting.last_attempt_at).total_seconds() <= 3630
    response = alice.client.post(f"/v1/webhooks/{webhook['id']}/deliveries/{waiting.pk}:redeliver")
    assert response.status_code == 202
    receiver.wait_for(2)
    assert wait_status(webhook, run_id, "delivered").attempts == 2
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id


def test_410_disables_the_webhook(runner, alice, receiver):
    webhook = create_webhook(alice, url=receiver.url)
    receiver.default = Answer(410)
    _, run_id = start(alice, "anyone there?")
    failed = wait_status(webhook, run_id, "failed")
    assert failed.last_status_code == 410 and failed.attempts == 1
    assert alice.client.get(f"/v1/webhooks/{webhook['id']}").json()["enabled"] is False
    _, later = start(alice, "and now?")
    wait_until(lambda: Run.objects.get(pk=later).status == "completed", what="the next run")
    assert not WebhookDelivery.objects.filter(run_id=later).exists() and len(receiver.received) == 1


def test_redirects_are_not_followed(runner, alice, receiver):
    webhook = create_webhook(alice, url=receiver.url)
    receiver.default = Answer(302, headers={"Location": f"{receiver.root}/target"})
    _, run_id = start(alice, "go elsewhere")
    wait_until(lambda: delivery_exists(webhook, run_id) and delivery(webhook, run_id).last_status_code == 302,
               what="the redirect to be recorded")
    assert delivery(webhook, run_id).status == "pending"  # retried later, like any non-2xx answer
    assert receiver.at("/target") == [] and len(receiver.at("/hook")) == 1


def test_hostile_answers_neither_hang_nor_break_the_sender(runner, alice, receiver):
    webhook = create_webhook(alice, url=receiver.url)
    receiver.answers = [Answer(raw=b"\x00garbage\r\n\r\n"), Answer(200, endless=True)]
    _, garbled = start(alice, "garbage first")
    wait_until(lambda: delivery_exists(webhook, garbled) and delivery(webhook, garbled).last_error,
               what="the garbled answer to be recorded")
    assert delivery(webhook, garbled).last_status_code is None  # no HTTP answer: retried later
    _, endless = start(alice, "an endless body")
    assert wait_status(webhook, endless, "delivered").last_status_code == 200  # read 64 KiB at most


def test_after_a_rotation_both_secrets_verify_for_a_day(runner, alice, receiver):
    webhook = create_webhook(alice, url=receiver.url)
    new_secret = alice.client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret").json()["secret"]
    _, run_id = start(alice, "rotated")
    [item] = receiver.wait_for(1)
    assert len(item.headers["webhook-signature"].split(" ")) == 2
    assert verified(item, webhook["secret"]) == verified(item, new_secret)
    with pytest.raises(WebhookVerificationError):
        verified(item, "whsec_" + "A" * 43 + "=")


def test_a_slow_endpoint_does_not_delay_another(runner, alice):
    release = threading.Event()
    with WebhookReceiver(default=Answer(release=release, hold_seconds=30)) as slow, WebhookReceiver() as fast:
        slow_hook, fast_hook = create_webhook(alice, url=slow.url), create_webhook(alice, url=fast.url)
        run_ids = [start(alice, f"run {n}")[1] for n in range(PER_WEBHOOK_IN_FLIGHT + 2)]
        fast.wait_for(len(run_ids), what="the fast endpoint's deliveries")
        slow.wait_for(1, what="the slow endpoint's first request")
        # Every fast delivery arrived while the slow endpoint still holds its first requests.
        assert len(slow.received) <= PER_WEBHOOK_IN_FLIGHT and not release.is_set()
        assert not WebhookDelivery.objects.filter(webhook_id=slow_hook["id"]).exclude(status="pending").exists()
        assert {r.json["data"]["run_id"] for r in fast.received} == set(run_ids)
        wait_until(lambda: WebhookDelivery.objects.filter(webhook_id=fast_hook["id"], status="delivered").count()
                   == len(run_ids), what="the fast deliveries to be recorded")
        assert not release.is_set() and len(slow.received) <= PER_WEBHOOK_IN_FLIGHT
        release.set()


def delivery_exists(webhook: dict, run_id: str) -> bool:
    return WebhookDelivery.objects.filter(webhook_id=webhook["id"], run_id=run_id).exists()
