"""`purge_events --older-than DAYS` also deletes webhook deliveries that are over and old; pending
ones stay, whatever their age."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from tests.runs.stories import finish, park_for_input, start_run, thread_with_question
from tests.webhooks.conftest import create_webhook
from webhooks.models import DeliveryStatus, WebhookDelivery


def deliveries(actor, count: int) -> list[WebhookDelivery]:
    create_webhook(actor)
    for _ in range(count):
        run_id = start_run(actor, thread_with_question(actor))
        park_for_input(run_id)  # run.waiting_for_input, then run.completed: two deliveries per run
        finish(run_id)
    return list(WebhookDelivery.objects.order_by("created_at", "seq"))


def age(delivery: WebhookDelivery, *, days: int, status: str) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(days=days),
                                                          status=status)


def test_old_finished_deliveries_go_and_pending_or_recent_ones_stay(alice):
    old_delivered, old_failed, old_pending, recent_delivered = deliveries(alice, 2)
    age(old_delivered, days=40, status=DeliveryStatus.DELIVERED)
    age(old_failed, days=40, status=DeliveryStatus.FAILED)
    age(old_pending, days=40, status=DeliveryStatus.PENDING)
    age(recent_delivered, days=5, status=DeliveryStatus.DELIVERED)

    dry = StringIO()
    call_command("purge_events", "--older-than", "30", "--dry-run", stdout=dry)
    assert "would delete 2 finished webhook deliveries older than 30 days" in dry.getvalue()
    assert WebhookDelivery.objects.count() == 4

    out = StringIO()
    call_command("purge_events", "--older-than", "30", "--batch-size", "1", stdout=out)
    assert "deleted 2 finished webhook deliveries older than 30 days" in out.getvalue()
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {old_pending.pk, recent_delivered.pk}
