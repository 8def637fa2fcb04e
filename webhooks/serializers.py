"""Shapes of webhooks and deliveries: request bodies and the objects of the webhooks API."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from arkloop.api import StrictSerializer
from arkloop.outbound import MAX_URL_LENGTH, OutboundRefused, check_outbound_url
from arkloop.text import text_is_clean
from webhooks.models import WEBHOOK_EVENT_TYPES, Webhook, WebhookDelivery


@extend_schema_field({"type": "array", "minItems": 1, "maxItems": 32,
                      "items": {"type": "string", "enum": list(WEBHOOK_EVENT_TYPES)}})
class EventsField(serializers.Field):
    """A non-empty subset of the webhook event types; stored and shown in their canonical order.
    Errors name `events` itself (not `events.0`)."""

    def to_internal_value(self, data: Any) -> list[str]:
        if not isinstance(data, list) or not data or len(data) > 32:
            raise serializers.ValidationError("must be a non-empty list of event types")
        unknown = [repr(item)[:60] for item in data if item not in WEBHOOK_EVENT_TYPES]
        if unknown:
            raise serializers.ValidationError(f"unknown event type {', '.join(unknown[:3])}; "
                                              f"known: {', '.join(WEBHOOK_EVENT_TYPES)}")
        return [event for event in WEBHOOK_EVENT_TYPES if event in data]

    def to_representation(self, value: list[str]) -> list[str]:
        return list(value)


def _check_url(value: str) -> str:
    try:
        return check_outbound_url(value)
    except OutboundRefused as exc:
        raise serializers.ValidationError(str(exc)) from None


def _check_text(value: str) -> str:
    if not text_is_clean(value):
        raise serializers.ValidationError("must not contain NUL or lone surrogate characters")
    return value


class WebhookCreateSerializer(StrictSerializer):
    url = serializers.CharField(max_length=MAX_URL_LENGTH, trim_whitespace=False, validators=[_check_url],
                                help_text="http or https; a public host unless ARKLOOP_ALLOW_PRIVATE_URLS")
    events = EventsField(required=False, help_text="default: all four")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="",
                                        validators=[_check_text])


class WebhookPatchSerializer(StrictSerializer):
    url = serializers.CharField(max_length=MAX_URL_LENGTH, trim_whitespace=False, validators=[_check_url],
                                required=False)
    events = EventsField(required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, validators=[_check_text])
    enabled = serializers.BooleanField(required=False)


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=WEBHOOK_EVENT_TYPES))

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "description", "enabled", "created_at"]


class WebhookWithSecretSerializer(WebhookSerializer):
    """The answer of create and rotate-secret: the only place the secret appears (null in replays)."""

    secret = serializers.SerializerMethodField()

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]

    @extend_schema_field({"type": "string", "nullable": True, "example": "whsec_…",
                          "description": "shown once; null when an Idempotency-Key replays this answer"})
    def get_secret(self, webhook: Webhook) -> str | None:
        return self.context["secret"]


class DeliverySerializer(serializers.ModelSerializer):
    webhook_id = serializers.UUIDField(read_only=True)
    run_id = serializers.UUIDField(read_only=True)
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook_id", "event_type", "run_id", "seq", "status", "attempts", "last_status_code",
                  "last_error", "next_attempt_at", "created_at", "delivered_at"]

    def get_last_error(self, delivery: WebhookDelivery) -> str | None:
        return delivery.last_error or None
