"""Writes of webhooks: create, change, delete, rotate the secret, redeliver.

Disabling a webhook (PATCH, a 410 answer, DELETE) fails its pending deliveries at once: nothing
more is sent to it, and the deliveries list says so. No delivery is created for a disabled one.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from arkloop.authentication import Principal
from arkloop.errors import Conflict
from arkloop.services import check_org_under_cap
from personas.credentials import encrypt_secret
from runs import notify
from webhooks.models import WEBHOOK_EVENT_TYPES, DeliveryStatus, Webhook, WebhookDelivery
from webhooks.signing import PREVIOUS_SECRET_TTL, secret_generate

EDITABLE_FIELDS = ("url", "events", "description", "enabled")


@transaction.atomic
def webhook_create(*, principal: Principal, url: str, events: list[str] | None = None,
                   description: str = "") -> tuple[Webhook, str]:
    """A new webhook of the caller's org and its secret in plaintext (the only time it is returned).

    `url` and `events` are already checked (serializers: arkloop.outbound, the event set). Raises
    ValidationFailed when the org already has ARKLOOP_MAX_WEBHOOKS_PER_ORG webhooks (deleted ones
    do not count; disabled ones do, as they may be enabled again).
    """
    check_org_under_cap(org_id=principal.org_id, cap=settings.ARKLOOP_MAX_WEBHOOKS_PER_ORG, what="webhooks",
                        existing=Webhook.objects.filter(org_id=principal.org_id, deleted_at__isnull=True))
    secret = secret_generate()
    webhook = Webhook.objects.create(org_id=principal.org_id, url=url, events=list(events or WEBHOOK_EVENT_TYPES),
                                     description=description, secret_encrypted=encrypt_secret(secret))
    return webhook, secret


@transaction.atomic
def webhook_update(*, webhook: Webhook, changes: dict[str, Any]) -> Webhook:
    """Apply a PATCH (`url`, `events`, `description`, `enabled`); disabling fails pending deliveries."""
    fields = [name for name in EDITABLE_FIELDS if name in changes]
    for name in fields:
        setattr(webhook, name, changes[name])
    webhook.save(update_fields=[*fields, "updated_at"])
    if changes.get("enabled") is False:
        deliveries_fail_pending(webhook_id=webhook.pk, reason="the webhook was disabled")
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook) -> None:
    """Soft delete: gone from the API, nothing more is sent; its deliveries stay for the record."""
    Webhook.objects.filter(pk=webhook.pk, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), enabled=False)
    deliveries_fail_pending(webhook_id=webhook.pk, reason="the webhook was deleted")


@transaction.atomic
def webhook_rotate_secret(*, webhook: Webhook) -> tuple[Webhook, str]:
    """A new secret (returned in plaintext once); the replaced one keeps signing for 24 h.

    Under the webhook's row lock, so two concurrent rotations keep the secret the other replaced.
    """
    locked = Webhook.objects.select_for_update().get(pk=webhook.pk)
    secret = secret_generate()
    locked.previous_secret_encrypted = locked.secret_encrypted
    locked.previous_secret_expires_at = timezone.now() + PREVIOUS_SECRET_TTL
    locked.secret_encrypted = encrypt_secret(secret)
    locked.save(update_fields=["secret_encrypted", "previous_secret_encrypted", "previous_secret_expires_at",
                               "updated_at"])
    return locked, secret


@transaction.atomic
def webhook_disable_gone(*, webhook_id: Any) -> None:
    """The endpoint answered 410 Gone: disable the webhook and fail what is still pending for it."""
    Webhook.objects.filter(pk=webhook_id).update(enabled=False, updated_at=timezone.now())
    deliveries_fail_pending(webhook_id=webhook_id, reason="the webhook was disabled: the endpoint answered 410 Gone")


def deliveries_fail_pending(*, webhook_id: Any, reason: str) -> int:
    """Mark the webhook's pending deliveries failed. One in flight records its answer first: a 2xx
    still counts as delivered, anything else fails it at the next claim (outbox.deliveries_claim)."""
    idle = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now())
    return WebhookDelivery.objects.filter(idle, webhook_id=webhook_id, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=reason)


@transaction.atomic
def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Attempt the delivery again at once (same `webhook-id`), with a fresh retry window.

    Raises Conflict webhooks.disabled when its webhook is disabled (enable it first).
    """
    if not Webhook.objects.filter(pk=delivery.webhook_id, enabled=True, deleted_at__isnull=True).exists():
        raise Conflict("webhooks.disabled", "the webhook is disabled; enable it before redelivering")
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now, delivered_at=None,
        retry_until=now + timedelta(hours=settings.ARKLOOP_WEBHOOK_RETRY_HOURS))
    notify.deliveries_due()
    delivery.refresh_from_db()
    return delivery


def purgeable_deliveries(*, older_than_days: int):
    """Deliveries that are over (delivered or failed) and were recorded more than `older_than_days`
    ago; pending ones are never purged, whatever their age."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    return WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(status=DeliveryStatus.PENDING)

