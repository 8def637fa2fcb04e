"""Shapes of the tenancy endpoints."""
from rest_framework import serializers

from arkloop.api import StrictSerializer
from arkloop.models import ApiKey


class TokenRequestSerializer(StrictSerializer):
    email = serializers.EmailField()
    password = serializers.CharField(min_length=1, max_length=1024, trim_whitespace=False)
    org = serializers.SlugField(required=False, max_length=64)


class TokenSerializer(serializers.Serializer):
    access_token = serializers.CharField(allow_null=True, help_text="null in an Idempotency-Key replay")
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ApiKeySerializer(serializers.ModelSerializer):
    user_id = serializers.CharField(source="membership.user_id", read_only=True)
    revoked = serializers.BooleanField(source="is_revoked", read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "user_id", "created_at", "last_used_at", "revoked_at", "revoked"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="the plaintext, shown once: null in an Idempotency-Key replay")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]

    def get_key(self, obj: ApiKey) -> str | None:
        return self.context["plaintext"]
