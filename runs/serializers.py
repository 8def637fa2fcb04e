"""Shapes of runs (SPEC §4): request bodies and the run object."""
from __future__ import annotations

from rest_framework import serializers

from arkloop.api import StrictSerializer, utf8_bytes_validator
from runs.models import Run

MAX_INPUT_BYTES = 32768


class StringField(serializers.CharField):
    """A CharField that takes only JSON strings (DRF would turn 7 into "7")."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class RunCreateSerializer(StrictSerializer):
    """Body of `POST /v1/threads/{id}/runs` and of `…:retry` (every field optional)."""

    persona_id = StringField(max_length=200, required=False, allow_null=True, allow_blank=True)
    route_id = StringField(max_length=100, required=False, allow_null=True, allow_blank=True)


class RunCancelSerializer(StrictSerializer):
    reason = StringField(max_length=500, required=False, allow_null=True, allow_blank=True)


class RunInputSerializer(StrictSerializer):
    content = StringField(trim_whitespace=False, validators=[utf8_bytes_validator(max_bytes=MAX_INPUT_BYTES)])


class RunCreatedSerializer(serializers.Serializer):
    run_id = serializers.CharField(source="pk")
    trace_id = serializers.CharField()


class OkSerializer(serializers.Serializer):
    ok = serializers.BooleanField(default=True)


class RunSerializer(serializers.ModelSerializer):
    """The run object. Expects `created_by` selected with the run (runs.selectors does)."""

    run_id = serializers.CharField(source="pk")
    org_id = serializers.CharField()
    thread_id = serializers.CharField()
    persona_id = serializers.SerializerMethodField()
    route_id = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()
    retry_of = serializers.SerializerMethodField()
    total_cost_usd = serializers.SerializerMethodField()
    duration_ms = serializers.IntegerField(allow_null=True)
    cache_hit_rate = serializers.FloatField(allow_null=True)
    error_class = serializers.SerializerMethodField()
    created_by_user_id = serializers.CharField(source="created_by_id")
    created_by_user_name = serializers.SerializerMethodField()
    created_by_email = serializers.CharField(source="created_by.email")

    class Meta:
        model = Run
        fields = ["run_id", "org_id", "thread_id", "status", "persona_id", "route_id", "model", "retry_of",
                  "total_input_tokens", "total_output_tokens", "total_cost_usd", "duration_ms",
                  "cache_hit_rate", "credits_used", "error_class", "created_at", "completed_at", "failed_at",
                  "cancelled_at", "created_by_user_id", "created_by_user_name", "created_by_email", "trace_id"]
        read_only_fields = fields

    def get_persona_id(self, run: Run) -> str | None:
        return run.persona_id or None

    def get_route_id(self, run: Run) -> str | None:
        return run.route_id or None

    def get_model(self, run: Run) -> str | None:
        return run.model or None

    def get_retry_of(self, run: Run) -> str | None:
        return str(run.retry_of_id) if run.retry_of_id else None

    def get_total_cost_usd(self, run: Run) -> float:
        return float(run.total_cost_usd)

    def get_error_class(self, run: Run) -> str | None:
        return run.error_class or None

    def get_created_by_user_name(self, run: Run) -> str:
        user = run.created_by
        return user.get_full_name() or user.get_username()

