"""`/v1/webhooks` (SPEC §11): org admins only, other orgs' → 404, secrets shown once."""
from __future__ import annotations

import base64

import pytest

from arkloop.models import IdempotencyRecord
from tests.runs.stories import finish, start_run, thread_with_question
from tests.webhooks.conftest import create_webhook, stored
from webhooks.models import WEBHOOK_EVENT_TYPES, DeliveryStatus, WebhookDelivery

OBJECT_FIELDS = {"id", "url", "events", "description", "enabled", "created_at"}


def test_create_returns_the_webhook_and_its_secret_once(alice):
    created = create_webhook(alice, description="ops")
    assert set(created) == OBJECT_FIELDS | {"secret"}
    assert created["events"] == list(WEBHOOK_EVENT_TYPES) and created["enabled"] is True
    assert created["secret"].startswith("whsec_")
    assert 24 <= len(base64.b64decode(created["secret"].removeprefix("whsec_"))) <= 64
    row = stored(created)
    assert created["secret"] not in row.secret_encrypted  # encrypted at rest
    shown = alice.client.get(f"/v1/webhooks/{created['id']}").json()
    listed = alice.client.get("/v1/webhooks").json()
    assert shown == {k: v for k, v in created.items() if k != "secret"} and listed == [shown]


def test_events_are_a_subset_kept_in_canonical_order(alice):
    created = create_webhook(alice, events=["run.waiting_for_input", "run.failed", "run.failed"])
    assert created["events"] == ["run.failed", "run.waiting_for_input"]


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "https://example.com/" + "a" * 2048}, "url"),
    ({"url": 42}, "url"),
    ({}, "url"),
    ({"url": "https://example.com/", "events": []}, "events"),
    ({"url": "https://example.com/", "events": ["run.started"]}, "events"),
    ({"url": "https://example.com/", "events": "run.completed"}, "events"),
    ({"url": "https://example.com/", "description": "bad \x00 byte"}, "description"),
    ({"url": "https://example.com/", "colour": "red"}, "colour"),
])
def test_invalid_bodies_are_422_naming_the_field(alice, body, field):
    response = alice.client.post("/v1/webhooks", body)
    assert response.status_code == 422 and field in response.json()["details"]["fields"], response.content


def test_private_addresses_are_refused_unless_allowed(alice, settings):
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = False
    for url in ("http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/", "http://[::1]/"):
        response = alice.client.post("/v1/webhooks", {"url": url})
        assert response.status_code == 422 and "url" in response.json()["details"]["fields"], url
        assert alice.client.patch(f"/v1/webhooks/{create_webhook(alice)['id']}", {"url": url}).status_code == 422
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = True
    assert create_webhook(alice, url="http://127.0.0.1:9/hook")["url"] == "http://127.0.0.1:9/hook"


def test_patch_changes_what_it_names(alice):
    webhook = create_webhook(alice, description="before")
    response = alice.client.patch(f"/v1/webhooks/{webhook['id']}", {"events": ["run.failed"], "enabled": False})
    assert response.status_code == 200
    assert response.json() == {**{k: v for k, v in webhook.items() if k != "secret"},
                               "events": ["run.failed"], "enabled": False}
    assert alice.client.patch(f"/v1/webhooks/{webhook['id']}", {"enabled": "no"}).status_code == 422
    assert alice.client.patch(f"/v1/webhooks/{webhook['id']}", {"secret": "whsec_x"}).status_code == 422


def test_delete_is_204_then_404(alice):
    webhook = create_webhook(alice)
    assert alice.client.delete(f"/v1/webhooks/{webhook['id']}").status_code == 204
    assert alice.client.get(f"/v1/webhooks/{webhook['id']}").json()["code"] == "webhooks.not_found"
    assert alice.client.delete(f"/v1/webhooks/{webhook['id']}").status_code == 404
    assert alice.client.get("/v1/webhooks").json() == []


def test_rotation_returns_a_new_secret_and_keeps_the_old_one_for_a_day(alice):
    webhook = create_webhook(alice)
    response = alice.client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret")
    assert response.status_code == 200 and response.json()["id"] == webhook["id"]
    new_secret = response.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != webhook["secret"]
    row = stored(webhook)
    assert row.previous_secret_encrypted and row.previous_secret_expires_at > row.updated_at
    assert "secret" not in alice.client.get(f"/v1/webhooks/{webhook['id']}").json()


def test_idempotent_replays_of_create_and_rotate_never_hold_the_secret(alice):
    first = alice.client.post("/v1/webhooks", {"url": "https://hooks.example.com/a"}, HTTP_IDEMPOTENCY_KEY="wh-1")
    again = alice.client.post("/v1/webhooks", {"url": "https://hooks.example.com/a"}, HTTP_IDEMPOTENCY_KEY="wh-1")
    assert first.json()["secret"].startswith("whsec_")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == {**first.json(), "secret": None}
    path = f"/v1/webhooks/{first.json()['id']}/rotate-secret"
    rotated = alice.client.post(path, HTTP_IDEMPOTENCY_KEY="rot-1").json()["secret"]
    assert alice.client.post(path, HTTP_IDEMPOTENCY_KEY="rot-1").json()["secret"] is None
    stored_bodies = b"".join(bytes(r.response_body) for r in IdempotencyRecord.objects.all())
    assert b"whsec_" not in stored_bodies and first.json()["secret"].encode() not in stored_bodies
    assert rotated.encode() not in stored_bodies


def test_lists_are_newest_first_in_keyset_pages(alice):
    ids = [create_webhook(alice, url=f"https://hooks.example.com/{n}")["id"] for n in range(3)]
    first = alice.client.get("/v1/webhooks?limit=2")
    assert [w["id"] for w in first.json()] == ids[:0:-1] and 'rel="next"' in first["Link"]
    second = alice.client.get(f"/v1/webhooks?limit=2&before={ids[1]}")
    assert [w["id"] for w in second.json()] == [ids[0]] and not second.has_header("Link")
    for limit in ("0", "201", "x"):
        assert alice.client.get(f"/v1/webhooks?limit={limit}").status_code == 422
    assert alice.client.get("/v1/webhooks?before=not-an-id").status_code == 422


def test_a_member_gets_403_on_every_endpoint(alice, bob):
    webhook = create_webhook(alice)
    delivery = _delivery_for(alice, webhook)
    base = f"/v1/webhooks/{webhook['id']}"
    calls = [("get", "/v1/webhooks", None), ("post", "/v1/webhooks", {"url": "https://x.example.com/"}),
             ("get", base, None), ("patch", base, {"enabled": False}), ("delete", base, None),
             ("post", f"{base}/rotate-secret", None), ("get", f"{base}/deliveries", None),
             ("post", f"{base}/deliveries/{delivery.pk}:redeliver", None)]
    for method, path, body in calls:
        response = getattr(bob.client, method)(path, body)
        assert (response.status_code, response.json()["code"]) == (403, "auth.forbidden"), (method, path)
    assert stored(webhook).enabled and stored(webhook).deleted_at is None


def test_another_orgs_webhooks_are_404_and_nothing_changes(alice, charlie):
    webhook = create_webhook(alice)
    delivery = _delivery_for(alice, webhook)
    base = f"/v1/webhooks/{webhook['id']}"
    calls = [("get", base, None), ("patch", base, {"enabled": False}), ("delete", base, None),
             ("post", f"{base}/rotate-secret", None), ("get", f"{base}/deliveries", None),
             ("post", f"{base}/deliveries/{delivery.pk}:redeliver", None),
             ("post", f"{base}/deliveries/{delivery.pk}/redeliver", None)]
    before = stored(webhook)
    for method, path, body in calls:
        response = getattr(charlie.client, method)(path, body)
        assert (response.status_code, response.json()["code"]) == (404, "webhooks.not_found"), (method, path)
    after = stored(webhook)
    assert (after.enabled, after.deleted_at, after.secret_encrypted) == (True, None, before.secret_encrypted)
    assert charlie.client.get("/v1/webhooks").json() == []
    # charlie's own webhook does not reach alice's deliveries either
    theirs = create_webhook(charlie)
    path = f"/v1/webhooks/{theirs['id']}/deliveries/{delivery.pk}:redeliver"
    assert charlie.client.post(path).json()["code"] == "webhooks.delivery_not_found"


def test_non_uuid_ids_are_404(alice):
    webhook = create_webhook(alice)
    assert alice.client.get("/v1/webhooks/not-a-uuid").status_code == 404
    assert alice.client.post(f"/v1/webhooks/{webhook['id']}/deliveries/x:redeliver").status_code == 404


def test_deliveries_list_and_redeliver(alice):
    webhook = create_webhook(alice)
    delivery = _delivery_for(alice, webhook)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, attempts=3,
                                                          last_status_code=500, last_error="HTTP 500",
                                                          next_attempt_at=None)
    listed = alice.client.get(f"/v1/webhooks/{webhook['id']}/deliveries").json()
    assert listed == [{"id": str(delivery.pk), "webhook_id": webhook["id"], "event_type": "run.completed",
                       "run_id": str(delivery.run_id), "seq": delivery.seq, "status": "failed", "attempts": 3,
                       "last_status_code": 500, "last_error": "HTTP 500", "next_attempt_at": None,
                       "created_at": listed[0]["created_at"], "delivered_at": None}]
    response = alice.client.post(f"/v1/webhooks/{webhook['id']}/deliveries/{delivery.pk}:redeliver")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert response.json()["next_attempt_at"] is not None
    alias = alice.client.post(f"/v1/webhooks/{webhook['id']}/deliveries/{delivery.pk}/redeliver")
    assert alias.status_code == 202


def test_redelivery_to_a_disabled_webhook_is_409(alice):
    webhook = create_webhook(alice)
    delivery = _delivery_for(alice, webhook)
    alice.client.patch(f"/v1/webhooks/{webhook['id']}", {"enabled": False})
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.FAILED  # nothing more is sent
    response = alice.client.post(f"/v1/webhooks/{webhook['id']}/deliveries/{delivery.pk}:redeliver")
    assert (response.status_code, response.json()["code"]) == (409, "webhooks.disabled")


def _delivery_for(actor, webhook: dict) -> WebhookDelivery:
    """Finish a run of the actor's org: the outbox records a delivery for the webhook."""
    run_id = start_run(actor, thread_with_question(actor))
    finish(run_id)
    return WebhookDelivery.objects.get(webhook_id=webhook["id"], run_id=run_id)
