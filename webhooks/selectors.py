"""Reads of webhooks and deliveries, always within the caller's org (other orgs' → 404)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from arkloop.access import parse_uuid
from arkloop.api import Page, keyset_page
from arkloop.authentication import Principal
from arkloop.errors import NotFound, ValidationFailed
from webhooks.models import DeliveryStatus, Webhook, WebhookDelivery


class WebhookNotFound(NotFound):
    code = "webhooks.not_found"
    message = "webhook not found"


class DeliveryNotFound(NotFound):
    code = "webhooks.delivery_not_found"
    message = "delivery not found"


def org_webhooks(*, principal: Principal) -> QuerySet[Webhook]:
    return Webhook.objects.filter(org_id=principal.org_id, deleted_at__isnull=True)


def access_webhook(*, principal: Principal, webhook_id: object) -> Webhook:
    """The org's webhook, else webhooks.not_found (malformed id, deleted, another org's)."""
    webhook = org_webhooks(principal=principal).filter(pk=parse_uuid(webhook_id, not_found=WebhookNotFound)).first()
    if webhook is None:
        raise WebhookNotFound()
    return webhook


def webhook_list(*, principal: Principal, limit: int, before: str | None = None) -> Page:
    """The org's webhooks newest first, after the `before` webhook."""
    anchor = _anchor(lambda: access_webhook(principal=principal, webhook_id=before)) if before else None
    return keyset_page(org_webhooks(principal=principal), limit=limit, before=anchor)


def access_delivery(*, webhook: Webhook, delivery_id: object) -> WebhookDelivery:
    pk = parse_uuid(delivery_id, not_found=DeliveryNotFound)
    delivery = WebhookDelivery.objects.filter(webhook=webhook, pk=pk).defer("body").first()
    if delivery is None:
        raise DeliveryNotFound()
    return delivery


def delivery_list(*, webhook: Webhook, limit: int, before: str | None = None) -> Page:
    """The webhook's deliveries newest first, after the `before` delivery."""
    anchor = _anchor(lambda: access_delivery(webhook=webhook, delivery_id=before)) if before else None
    return keyset_page(WebhookDelivery.objects.filter(webhook=webhook).defer("body"), limit=limit, before=anchor)


def _anchor(fetch):
    """The row a `before` cursor names; one naming nothing the caller sees is invalid input."""
    try:
        return fetch()
    except NotFound:
        raise ValidationFailed({"before": ["not an id from a previous page"]}) from None


@dataclass(frozen=True)
class FailingWebhook:
    webhook: Webhook
    failed: int  # deliveries that failed since `since`
    retrying: int  # pending deliveries whose last attempt failed
    last_error: str


def webhooks_failing(*, since: datetime) -> list[FailingWebhook]:
    """Webhooks (all orgs) with deliveries that failed since `since` or are being retried, worst first."""
    failing = Q(deliveries__status=DeliveryStatus.FAILED, deliveries__created_at__gte=since)
    retrying = Q(deliveries__status=DeliveryStatus.PENDING, deliveries__attempts__gt=0)
    webhooks = (Webhook.objects.filter(deleted_at__isnull=True).select_related("org")
                .annotate(failed=Count("deliveries", filter=failing), retrying=Count("deliveries", filter=retrying))
                .filter(Q(failed__gt=0) | Q(retrying__gt=0)).order_by("-failed", "-retrying"))
    return [FailingWebhook(webhook=w, failed=w.failed, retrying=w.retrying, last_error=_last_error(w))
            for w in webhooks]


def _last_error(webhook: Webhook) -> str:
    return (WebhookDelivery.objects.filter(webhook=webhook).exclude(last_error="")
            .order_by("-last_attempt_at").values_list("last_error", flat=True).first() or "")
