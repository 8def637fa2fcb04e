"""Shapes of runs (SPEC §4): request bodies and the run object."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from arkloop.api import StrictSerializer, utf8_bytes_validator
from runs.limits import LIMIT_NAMES, Limits, LimitsInvalid, limits_parse
from runs.models import Run, RunStatus

MAX_INPUT_BYTES = 32768


class StringField(serializers.CharField):
    """A CharField that takes only JSON strings (DRF would turn 7 into "7")."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.OBJECT)
class LimitsField(serializers.Field):
    """Run limits: `{"max_turns": 5, "max_cost_usd": 0.5, …}` (runs.limits); errors name `limits.<name>`."""

    def to_internal_value(self, data: Any) -> Limits:
        try:
            return limits_parse(data)
        except LimitsInvalid as exc:
            raise serializers.ValidationError(exc.errors.get("") or exc.errors) from None

    def to_representation(self, value: Limits) -> Limits:
        return value


class RunCreateSerializer(StrictSerializer):
    """Body of `POST /v1/threads/{id}/runs` and of `…:retry` (every field optional)."""

    persona_id = StringField(max_length=200, required=False, allow_null=True, allow_blank=True)
    route_id = StringField(max_length=100, required=False, allow_null=True, allow_blank=True)
    limits = LimitsField(required=False, allow_null=True,
                         help_text="lower limits for this run: max_turns, max_tool_calls, max_output_tokens, "
                                   "max_cost_usd, timeout_seconds")


class RunCancelSerializer(StrictSerializer):
    reason = StringField(max_length=500, required=False, allow_null=True, allow_blank=True)


class RunInputSerializer(StrictSerializer):
    content = StringField(trim_whitespace=False, validators=[utf8_bytes_validator(max_bytes=MAX_INPUT_BYTES)])


class RunCreatedSerializer(serializers.Serializer):
    run_id = serializers.CharField(source="pk")
    trace_id = serializers.CharField()


class OkSerializer(serializers.Serializer):
    ok = serializers.BooleanField(default=True)


def _timestamp(value: datetime | None) -> str | None:
    """RFC 3339 UTC with microseconds and `Z`, as REST_FRAMEWORK["DATETIME_FORMAT"] renders it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


class RunSerializer(serializers.Serializer):
    """The run object. Expects `created_by` selected with the run (runs.selectors does).

    The fields declare the shape (for the OpenAPI schema); `to_representation` builds it directly,
    because DRF's per-field machinery was most of the time of a 200-run page.
    """

    run_id = serializers.UUIDField()
    org_id = serializers.UUIDField()
    thread_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    persona_id = serializers.CharField(allow_null=True, help_text="key@version")
    route_id = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    retry_of = serializers.UUIDField(allow_null=True)
    total_input_tokens = serializers.IntegerField()
    total_output_tokens = serializers.IntegerField()
    total_cost_usd = serializers.FloatField()
    duration_ms = serializers.IntegerField(allow_null=True)
    cache_hit_rate = serializers.FloatField(allow_null=True)
    credits_used = serializers.IntegerField()
    error_class = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)
    created_by_user_id = serializers.UUIDField()
    created_by_user_name = serializers.CharField()
    created_by_email = serializers.EmailField()
    trace_id = serializers.CharField()
    limits = serializers.DictField(help_text="the effective limits: max_turns, max_tool_calls, max_output_tokens, "
                                             "max_cost_usd, timeout_seconds (null: no limit)")

    def to_representation(self, run: Run) -> dict[str, Any]:
        user = run.created_by
        return {
            "run_id": str(run.pk), "org_id": str(run.org_id), "thread_id": str(run.thread_id),
            "status": run.status, "persona_id": run.persona_id or None, "route_id": run.route_id or None,
            "model": run.model or None, "retry_of": str(run.retry_of_id) if run.retry_of_id else None,
            "total_input_tokens": run.total_input_tokens, "total_output_tokens": run.total_output_tokens,
            "total_cost_usd": float(run.total_cost_usd), "duration_ms": run.duration_ms,
            "cache_hit_rate": run.cache_hit_rate, "credits_used": run.credits_used,
            "error_class": run.error_class or None, "created_at": _timestamp(run.created_at),
            "completed_at": _timestamp(run.completed_at), "failed_at": _timestamp(run.failed_at),
            "cancelled_at": _timestamp(run.cancelled_at), "created_by_user_id": str(run.created_by_id),
            "created_by_user_name": user.get_full_name() or user.get_username(),
            "created_by_email": user.email, "trace_id": run.trace_id,
            "limits": {name: run.limits.get(name) for name in LIMIT_NAMES} if run.limits else None,
        }
