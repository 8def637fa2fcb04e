"""Webhooks (an org's endpoints for run outcomes) and their deliveries (the outbox the runner sends).

A delivery row is written in the same transaction as the event that causes it
(`runs.events.event_append` → `webhooks.outbox.deliveries_enqueue`), so a crash never loses one;
runners claim due rows with a lease (`webhooks.outbox.deliveries_claim`) and POST them
(`webhooks.sender`).
"""
import uuid

from django.db import models
from django.db.models import Q

from arkloop.models import Org

# The run events a webhook may subscribe to, in the order `events` lists them.
WEBHOOK_EVENT_TYPES = ("run.completed", "run.failed", "run.cancelled", "run.waiting_for_input")


class Webhook(models.Model):
    """An org's endpoint. Its secrets are Fernet tokens (personas.credentials) and never rendered."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list)  # a subset of WEBHOOK_EVENT_TYPES, in that order
    description = models.CharField(max_length=500, blank=True, default="")
    enabled = models.BooleanField(default=True)
    secret_encrypted = models.TextField(editable=False)
    # After a rotation the replaced secret keeps signing (a second signature) until it expires.
    previous_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)  # soft delete: deliveries keep their webhook

    class Meta:
        indexes = [models.Index(fields=["org", "-created_at", "-id"], name="webhook_org_created",
                                condition=Q(deleted_at__isnull=True))]

    def __str__(self) -> str:
        return f"webhook {self.url}"

    @property
    def is_live(self) -> bool:
        """Deliveries may be sent: enabled and not deleted."""
        return self.enabled and self.deleted_at is None


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One event for one webhook: the body (fixed at the event), its attempts and the sender's lease."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="webhook_deliveries")
    seq = models.BigIntegerField()
    event_type = models.CharField(max_length=64)
    body = models.TextField()  # the JSON body, the same bytes on every attempt
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # set while pending
    retry_until = models.DateTimeField()  # end of the retry window: no attempt is scheduled after it
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # The sender holding an attempt in flight; another sender may take the row once it expires.
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["webhook", "-created_at", "-id"], name="delivery_webhook_created"),
            models.Index(fields=["next_attempt_at"], name="delivery_due", condition=Q(status="pending")),
        ]
        constraints = [
            # One delivery per webhook and event, whatever retries the appending transaction makes.
            models.UniqueConstraint(fields=["webhook", "run", "seq"], name="delivery_once_per_event"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} {self.event_type} ({self.status})"

    @property
    def message_id(self) -> str:
        return message_id(self.pk)


def message_id(delivery_id: object) -> str:
    """The `webhook-id` header: the same on every attempt of a delivery."""
    return f"msg_{delivery_id}"
