"""Staff views of webhooks: secrets never shown, deliveries with their state, redeliver, failing endpoints."""
from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.urls import reverse

from tests.runs.stories import finish, start_run, thread_with_question
from tests.webhooks.conftest import create_webhook, stored
from webhooks.models import DeliveryStatus, WebhookDelivery


def failed_delivery(actor, webhook: dict, error: str = "HTTP 500: boom") -> WebhookDelivery:
    run_id = start_run(actor, thread_with_question(actor))
    finish(run_id)
    WebhookDelivery.objects.filter(run_id=run_id).update(status=DeliveryStatus.FAILED, attempts=9,
                                                         last_status_code=500, last_error=error, next_attempt_at=None)
    return WebhookDelivery.objects.get(webhook_id=webhook["id"], run_id=run_id)


def test_webhook_pages_never_show_a_secret(admin_client, alice):
    webhook = create_webhook(alice, url="https://hooks.example.com/acme")
    rotated = alice.client.post(f"/v1/webhooks/{webhook['id']}/rotate-secret").json()["secret"]
    row = stored(webhook)
    pages = [admin_client.get(reverse("admin:webhooks_webhook_changelist")),
             admin_client.get(reverse("admin:webhooks_webhook_change", args=[webhook["id"]]))]
    for page in pages:
        text = page.content.decode()
        assert page.status_code == 200 and "hooks.example.com/acme" in text
        for secret in (webhook["secret"], rotated, row.secret_encrypted, row.previous_secret_encrypted):
            assert secret not in text
        assert "whsec_" not in text


def test_switching_a_webhook_off_in_the_admin_fails_its_pending_deliveries(admin_client, alice):
    webhook = create_webhook(alice)
    run_id = start_run(alice, thread_with_question(alice))
    finish(run_id)
    url = reverse("admin:webhooks_webhook_change", args=[webhook["id"]])
    assert admin_client.post(url, {"enabled": ""}).status_code == 302
    assert not stored(webhook).enabled
    assert WebhookDelivery.objects.get(run_id=run_id).status == DeliveryStatus.FAILED


def test_delivery_list_shows_state_and_redeliver_action_requeues(admin_client, alice):
    webhook = create_webhook(alice)
    delivery = failed_delivery(alice, webhook)
    changelist = reverse("admin:webhooks_webhookdelivery_changelist")
    text = admin_client.get(changelist, {"status": "failed"}).content.decode()
    assert str(delivery.pk)[:8] in text and "HTTP 500: boom" in text and ">500<" in text
    detail = admin_client.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))
    assert detail.status_code == 200 and "run.completed" in detail.content.decode()
    response = admin_client.post(changelist, {"action": "redeliver_selected", "_selected_action": [delivery.pk]})
    assert response.status_code == 302
    requeued = WebhookDelivery.objects.get(pk=delivery.pk)
    assert requeued.status == DeliveryStatus.PENDING and requeued.next_attempt_at is not None


def test_failing_endpoints_in_the_admin_filter_and_the_command(admin_client, alice, charlie):
    failing = create_webhook(alice, url="https://hooks.example.com/broken")
    healthy = create_webhook(charlie, url="https://hooks.example.com/fine")
    failed_delivery(alice, failing, error="HTTP 503: try later")
    text = admin_client.get(reverse("admin:webhooks_webhook_changelist"), {"health": "failing"}).content.decode()
    assert "hooks.example.com/broken" in text and "hooks.example.com/fine" not in text
    out = StringIO()
    call_command("webhook_failures", stdout=out)
    printed = out.getvalue()
    assert failing["id"] in printed and "failed=1" in printed and "HTTP 503: try later" in printed
    assert healthy["id"] not in printed and printed.rstrip().endswith("1 failing webhook(s)")
