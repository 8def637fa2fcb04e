"""The webhook outbox: deliveries recorded with their event, claimed with a lease, settled once.

- `deliveries_enqueue` runs inside `runs.events.event_append`, in the transaction that appends a
  subscribed event type: one delivery per enabled webhook of the run's org that wants it, with
  its body fixed there (the run object as the event left it, plus `seq`). For an org without
  webhooks it costs one indexed SELECT that finds nothing.
- `deliveries_claim` gives a runner's sender the due deliveries it has room for (SELECT … FOR
  UPDATE SKIP LOCKED on PostgreSQL; SQLite's IMMEDIATE transactions admit one claimer at a time),
  at most `per_webhook` in flight per webhook, leased so that another runner takes them over if
  this one dies mid-attempt.
- `delivery_record` stores an attempt's answer and what it means (`delivery_decide`: delivered,
  retry later, failed, 410 → webhook disabled) — the one place a delivery outcome is decided.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from rest_framework.fields import DateTimeField

from personas.credentials import CredentialsUnreadable
from runs import notify
from runs.models import Run, RunEvent
from runs.serializers import RunSerializer
from webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from webhooks.services import webhook_disable_gone
from webhooks.signing import signing_secrets

# Delay after the n-th failed attempt (seconds), then every LATER_DELAY; each ± JITTER.
RETRY_DELAYS = (5, 30, 120, 600, 1800, 3600)
LATER_DELAY = 7200
JITTER = 0.2
MIN_RETRY_AFTER = 1.0  # a `Retry-After: 0` must not become a busy loop
MAX_ERROR_LENGTH = 500


class DeliveryOutcome(StrEnum):
    """What an attempt led to (the `outcome` of a delivery metric)."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"  # the retry window is over
    DISABLED = "disabled"  # 410 Gone: the webhook is disabled
    LOST = "lost"  # our lease was taken over (or the delivery changed meanwhile): nothing recorded


@dataclass(frozen=True)
class Attempt:
    """A claimed delivery, with what the sender needs to POST it."""

    delivery_id: str
    webhook_id: str
    url: str
    body: str
    number: int  # 1 for the first attempt
    retry_until: datetime
    secrets: list[str] | None  # None: they cannot be decrypted (ARKLOOP_ENCRYPTION_KEY changed)


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None = None  # None: no HTTP answer (timeout, connection error, refused)
    error: str = ""
    retry_after: float | None = None  # seconds, from the answer's Retry-After

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# --- recording deliveries (inside the event's transaction) ------------------------------------------

def deliveries_enqueue(*, org_id: Any, event: RunEvent) -> int:
    """Record a delivery of `event` for each enabled webhook of the org subscribed to its type.

    Call inside the transaction that appends the event; returns how many were recorded. The
    senders are woken when that transaction commits.
    """
    webhook_ids = [pk for pk, events in Webhook.objects.filter(
        org_id=org_id, enabled=True, deleted_at__isnull=True).values_list("pk", "events") if event.type in events]
    if not webhook_ids:
        return 0
    body = delivery_body(event)
    retry_until = event.created_at + timedelta(hours=settings.ARKLOOP_WEBHOOK_RETRY_HOURS)
    WebhookDelivery.objects.bulk_create([
        WebhookDelivery(webhook_id=pk, run_id=event.run_id, seq=event.seq, event_type=event.type, body=body,
                        next_attempt_at=event.created_at, retry_until=retry_until)
        for pk in webhook_ids])
    notify.deliveries_due()
    return len(webhook_ids)


def delivery_body(event: RunEvent) -> str:
    """`{"type", "timestamp", "data": {<the run object of GET /v1/runs/{id}>, "seq"}}` as JSON text.

    Built when the event is appended, so every attempt (and a redelivery) sends the run as that
    event left it — a `run.waiting_for_input` delivery says `waiting_for_input` even when retried
    after the answer came.
    """
    run = Run.objects.select_related("created_by").defer("created_by__password").get(pk=event.run_id)
    payload = {"type": event.type, "timestamp": DateTimeField().to_representation(event.created_at),
               "data": {**RunSerializer(run).data, "seq": event.seq}}
    return json.dumps(payload, separators=(",", ":"))


# --- claiming -------------------------------------------------------------------------------------

def _due(now: datetime) -> QuerySet[WebhookDelivery]:
    unleased = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    return WebhookDelivery.objects.filter(unleased, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)


def deliveries_claim(*, owner: str, room: int, busy: dict[str, int], per_webhook: int,
                     lease_seconds: float) -> list[Attempt]:
    """Lease up to `room` due deliveries for `owner`, oldest due first.

    `busy` counts the attempts `owner` already has in flight per webhook: no webhook gets more
    than `per_webhook`, and a webhook at its cap is left out of the query, so a slow endpoint's
    backlog never hides another endpoint's deliveries. Deliveries whose webhook was disabled or
    deleted meanwhile are failed instead.
    """
    now = timezone.now()
    full = {webhook for webhook, count in busy.items() if count >= per_webhook}
    if room <= 0 or not _due(now).exclude(webhook_id__in=full).exists():  # the idle poll: one read, no lock
        return []
    with transaction.atomic():
        claimed = _pick(now=now, room=room, busy=busy, per_webhook=per_webhook, full=full)
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
            lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds), attempts=F("attempts") + 1,
            last_attempt_at=now)
    return [_attempt(row, now) for row in claimed]


def _pick(*, now: datetime, room: int, busy: dict[str, int], per_webhook: int,
          full: set[str]) -> list[WebhookDelivery]:
    """Lock due rows and keep those within the caps; each round leaves out the webhooks that
    filled up in the previous one, until there is no room or nothing more to take."""
    taken: Counter[str] = Counter(busy)
    claimed: list[WebhookDelivery] = []
    while len(claimed) < room:
        rows = list(_due(now).exclude(webhook_id__in=full).exclude(pk__in=[d.pk for d in claimed])
                    .select_related("webhook").select_for_update(skip_locked=True, of=("self",))
                    .order_by("next_attempt_at")[: room - len(claimed)])
        dead = [row.pk for row in rows if not row.webhook.is_live]
        if dead:
            WebhookDelivery.objects.filter(pk__in=dead).update(
                status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="the webhook is disabled")
        capped = False
        for row in rows:
            webhook_id = str(row.webhook_id)
            if not row.webhook.is_live:
                continue
            if taken[webhook_id] >= per_webhook:
                full.add(webhook_id)
                capped = True
                continue
            taken[webhook_id] += 1
            claimed.append(row)
        if not rows or not (capped or dead):
            return claimed
    return claimed


def _attempt(row: WebhookDelivery, now: datetime) -> Attempt:
    webhook = row.webhook
    try:
        secrets = signing_secrets(current=webhook.secret_encrypted, previous=webhook.previous_secret_encrypted,
                                  previous_expires_at=webhook.previous_secret_expires_at, now=now)
    except CredentialsUnreadable:
        secrets = None
    return Attempt(delivery_id=str(row.pk), webhook_id=str(row.webhook_id), url=webhook.url, body=row.body,
                   number=row.attempts + 1, retry_until=row.retry_until, secrets=secrets)


def deliveries_renew(*, owner: str, delivery_ids: list[str], lease_seconds: float) -> int:
    """Extend the leases of the attempts `owner` has in flight (one statement)."""
    expires = timezone.now() + timedelta(seconds=lease_seconds)
    return WebhookDelivery.objects.filter(pk__in=delivery_ids, lease_owner=owner).update(lease_expires_at=expires)


def deliveries_release(*, owner: str, delivery_ids: list[str]) -> int:
    """Give back interrupted attempts (shutdown): due at once, for any runner."""
    return WebhookDelivery.objects.filter(pk__in=delivery_ids, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None, next_attempt_at=timezone.now())


# --- settling an attempt --------------------------------------------------------------------------

def retry_delay(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: ~5 s, 30 s, 2 min, 10 min, 30 min,
    1 h, then every 2 h, each with ±20 % jitter (so many failed deliveries do not retry in step)."""
    base = RETRY_DELAYS[attempts - 1] if 1 <= attempts <= len(RETRY_DELAYS) else LATER_DELAY
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds asked for by a `Retry-After` header (delay-seconds or an HTTP date), at least 1 s;
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit() and len(value) <= 12:
        return max(MIN_RETRY_AFTER, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(MIN_RETRY_AFTER, (when - now).total_seconds())


def delivery_record(*, attempt: Attempt, owner: str, result: AttemptResult) -> DeliveryOutcome:
    """Store the answer to an attempt and what comes next (see `delivery_decide`).

    Only the lease holder records (LOST otherwise: another runner owns the delivery now). A 410
    also disables the webhook, in the same transaction.
    """
    outcome, fields = delivery_decide(attempt=attempt, result=result, now=timezone.now())
    mine = WebhookDelivery.objects.filter(pk=attempt.delivery_id, lease_owner=owner, status=DeliveryStatus.PENDING)
    with transaction.atomic():
        if mine.update(**fields, last_status_code=result.status_code, last_error=result.error[:MAX_ERROR_LENGTH],
                       lease_owner="", lease_expires_at=None) != 1:
            return DeliveryOutcome.LOST
        if outcome == DeliveryOutcome.DISABLED:
            webhook_disable_gone(webhook_id=attempt.webhook_id)
    return outcome


def delivery_decide(*, attempt: Attempt, result: AttemptResult, now: datetime) -> tuple[DeliveryOutcome, dict]:
    """What an answer means — the one place a delivery outcome is decided — and the fields to set.

    2xx → delivered; 410 → failed, webhook disabled; anything else (another status, a timeout, a
    connection error, a refused address) → retried after the answer's `Retry-After` if it has
    one, else after `retry_delay`; a retry that would come after the retry window → failed.
    """
    if result.delivered:
        return DeliveryOutcome.DELIVERED, {"status": DeliveryStatus.DELIVERED, "delivered_at": now,
                                           "next_attempt_at": None}
    failed = {"status": DeliveryStatus.FAILED, "next_attempt_at": None}
    if result.status_code == 410:
        return DeliveryOutcome.DISABLED, failed
    delay = result.retry_after if result.retry_after is not None else retry_delay(attempt.number)
    next_at = now + timedelta(seconds=delay)
    if next_at > attempt.retry_until:
        return DeliveryOutcome.FAILED, failed
    return DeliveryOutcome.RETRY, {"next_attempt_at": next_at}
