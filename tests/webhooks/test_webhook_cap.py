"""ARKLOOP_MAX_WEBHOOKS_PER_ORG: every terminal event writes one delivery per webhook inside the
runner's transaction, so an org may not register webhooks without end."""
from __future__ import annotations

import pytest

from tests.conftest import make_actor
from tests.runs.test_run_concurrency import create_call, in_parallel
from tests.webhooks.conftest import create_webhook
from webhooks.models import Webhook


@pytest.fixture(autouse=True)
def cap_of_two(settings) -> None:
    settings.ARKLOOP_MAX_WEBHOOKS_PER_ORG = 2


def test_the_webhook_past_the_cap_is_422_and_not_stored(alice, charlie):
    first, _ = create_webhook(alice), create_webhook(alice)
    response = alice.client.post("/v1/webhooks", {"url": "https://hooks.example.com/third"})
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "validation.error" and "at most 2 webhooks" in body["message"]
    assert body["details"]["fields"] == {"non_field_errors": ["an org may have at most 2 webhooks"]}
    assert Webhook.objects.filter(org=alice.org).count() == 2
    create_webhook(charlie), create_webhook(charlie)  # another org has its own two
    alice.client.patch(f"/v1/webhooks/{first['id']}", {"enabled": False})
    assert alice.client.post("/v1/webhooks", {"url": "https://hooks.example.com/x"}).status_code == 422
    assert alice.client.delete(f"/v1/webhooks/{first['id']}").status_code == 204
    create_webhook(alice, url="https://hooks.example.com/third")  # a deleted one frees its place


def test_no_cap_when_zero(alice, settings):
    settings.ARKLOOP_MAX_WEBHOOKS_PER_ORG = 0
    for _ in range(3):
        create_webhook(alice)


def test_parallel_creates_never_pass_the_cap(transactional_db):
    alice = make_actor(org="acme", email="alice@acme.test", role="admin")
    bodies = [{"url": f"https://hooks.example.com/{n}"} for n in range(8)]
    statuses = in_parallel([create_call(alice.key, "/v1/webhooks", body) for body in bodies])
    assert sorted(statuses) == [201] * 2 + [422] * 6
    assert Webhook.objects.filter(org=alice.org).count() == 2
