"""Staff console for webhooks and their deliveries.

A webhook's secrets (plaintext or ciphertext) are never rendered. Staff may switch a webhook off
or on and redeliver deliveries; URLs and events belong to the org's admins (the API), so a staff
member cannot point an org's signed notifications elsewhere. The "failing" filter lists the
endpoints whose deliveries fail or are being retried (as does `manage.py webhook_failures`).
"""
from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from arkloop.errors import Conflict
from webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from webhooks.services import delivery_redeliver, webhook_update

FAILING_WINDOW = timedelta(hours=24)


class FailingFilter(admin.SimpleListFilter):
    title = "health"
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("failing", "Failing (failed in 24 h or retrying)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> QuerySet[Webhook]:
        if self.value() != "failing":
            return queryset
        since = timezone.now() - FAILING_WINDOW
        failing = (Q(deliveries__status=DeliveryStatus.FAILED, deliveries__created_at__gte=since)
                   | Q(deliveries__status=DeliveryStatus.PENDING, deliveries__attempts__gt=0))
        return queryset.filter(failing).distinct()


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url_short", "org", "event_list", "enabled", "created_at", "deleted_at"]
    list_filter = [FailingFilter, "enabled", "org"]
    list_select_related = ["org"]
    search_fields = ["url", "description", "=id"]
    ordering = ["-created_at", "-id"]
    fields = ["id", "org", "url", "events", "description", "enabled", "created_at", "updated_at", "deleted_at",
              "recent_deliveries"]
    readonly_fields = ["id", "org", "url", "events", "description", "created_at", "updated_at", "deleted_at",
                       "recent_deliveries"]

    @admin.display(description="url", ordering="url")
    def url_short(self, webhook: Webhook) -> str:
        return Truncator(webhook.url).chars(60)

    @admin.display(description="events")
    def event_list(self, webhook: Webhook) -> str:
        return ", ".join(webhook.events)

    @admin.display(description="deliveries")
    def recent_deliveries(self, webhook: Webhook) -> str:
        url = f"{reverse('admin:webhooks_webhookdelivery_changelist')}?q={webhook.pk}"
        return format_html('<a href="{}">All deliveries of this webhook</a>', url)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created by org admins through the API, which returns the secret once

    def has_delete_permission(self, request: HttpRequest, obj: Webhook | None = None) -> bool:
        return False  # deleted through the API (a soft delete that fails what is pending)

    def save_model(self, request: HttpRequest, obj: Webhook, form, change: bool) -> None:
        # Through the service, so switching a webhook off fails its pending deliveries.
        webhook_update(webhook=obj, changes={"enabled": obj.enabled})


class DeliveryStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [*DeliveryStatus.choices, ("retrying", "Pending, last attempt failed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> QuerySet[WebhookDelivery]:
        if self.value() == "retrying":
            return queryset.filter(status=DeliveryStatus.PENDING, attempts__gt=0)
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["short_id", "webhook_url", "org", "event_type", "run_id", "seq", "status", "attempts",
                    "last_status_code", "error", "next_attempt_at", "created_at", "delivered_at"]
    list_filter = [DeliveryStatusFilter, "event_type", "webhook__org"]
    list_select_related = ["webhook__org"]
    search_fields = ["=id", "=run__id", "=webhook__id"]
    search_help_text = "A delivery id, a run id or a webhook id."
    ordering = ["-created_at", "-id"]
    actions = ["redeliver_selected"]
    show_full_result_count = False
    fields = ["id", "webhook", "run", "seq", "event_type", "status", "attempts", "last_status_code", "last_error",
              "last_attempt_at", "next_attempt_at", "retry_until", "created_at", "delivered_at", "lease_owner",
              "lease_expires_at", "pretty_body"]
    readonly_fields = fields

    @admin.display(description="delivery", ordering="id")
    def short_id(self, delivery: WebhookDelivery) -> str:
        return str(delivery.pk)[:8]

    @admin.display(description="webhook")
    def webhook_url(self, delivery: WebhookDelivery) -> str:
        return Truncator(delivery.webhook.url).chars(40)

    @admin.display(description="org")
    def org(self, delivery: WebhookDelivery) -> str:
        return str(delivery.webhook.org)

    @admin.display(description="last error")
    def error(self, delivery: WebhookDelivery) -> str:
        return Truncator(delivery.last_error).chars(60)

    @admin.display(description="body")
    def pretty_body(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(json.loads(delivery.body), indent=2))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False

    @admin.action(description="Redeliver selected deliveries", permissions=["redeliver"])
    def redeliver_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        done = refused = 0
        for delivery in queryset:
            try:
                delivery_redeliver(delivery=delivery)
                done += 1
            except Conflict:
                refused += 1
        self.message_user(request, f"{done} delivery(ies) will be attempted again at once; "
                                   f"{refused} skipped (their webhook is disabled).", messages.SUCCESS)

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.change_webhookdelivery")
