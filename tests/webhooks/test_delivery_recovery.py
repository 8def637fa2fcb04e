"""Deliveries that need runners of their own: a runner killed mid-delivery, and one that may not
reach private addresses. (No other runner may be running while these do.)"""
from __future__ import annotations

import threading

import pytest

from tests.fakes.webhook_receiver import Answer, WebhookReceiver
from tests.runner.helpers import start
from tests.runner.processes import RunnerProcess, wait_until
from tests.webhooks.conftest import create_webhook, stored
from tests.webhooks.test_delivery import delivery, delivery_exists, wait_status
from webhooks.models import DeliveryStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    with WebhookReceiver() as receiver:
        yield receiver


def test_a_runner_killed_mid_delivery_leaves_it_to_another_runner(alice, database_url, receiver):
    webhook = create_webhook(alice, url=receiver.url)
    held = threading.Event()
    receiver.answers = [Answer(500, release=held)]  # never reaches the killed runner
    one, two = (RunnerProcess(database_url, ARKLOOP_ALLOW_PRIVATE_URLS="true") for _ in range(2))
    one.spawn(), two.spawn()
    with one, two:
        _, run_id = start(alice, "crash after commit")
        receiver.wait_for(1)  # run.completed is committed and its delivery is in flight
        holder = delivery(webhook, run_id).lease_owner
        victim = one if f":{one.process.pid}:" in holder else two
        victim.kill()
        held.set()
        assert delivery(webhook, run_id).status == "pending"
        done = wait_status(webhook, run_id, "delivered")  # once the dead runner's lease expires
    assert done.attempts == 2 and done.lease_owner == "" and len(receiver.received) == 2
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id
    assert [r.answered for r in receiver.received if r.answered and r.answered < 300] == [200]


def test_private_addresses_are_refused_at_delivery_unless_allowed(alice, database_url, receiver):
    webhook = create_webhook(alice, url=receiver.url)  # stored while allowed (this test process)
    with RunnerProcess(database_url, ARKLOOP_ALLOW_PRIVATE_URLS="false"):
        _, run_id = start(alice, "to a private address")
        wait_until(lambda: delivery_exists(webhook, run_id) and delivery(webhook, run_id).attempts >= 1
                   and delivery(webhook, run_id).last_error != "", what="the refused attempt")
    refused = delivery(webhook, run_id)
    assert refused.status == DeliveryStatus.PENDING and refused.last_status_code is None
    assert "refused" in refused.last_error and receiver.received == []
    assert stored(webhook).enabled
