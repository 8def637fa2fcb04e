"""Shapes of the MCP server API. Output never holds a header value, encrypted or not: only its name."""
from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from arkloop.api import StrictSerializer
from mcp_servers.models import MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS, NAME_PATTERN, McpServer

_NAME_RULE = "1 to 32 characters of a-z, 0-9, _ and -"


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class HeadersField(serializers.JSONField):
    """Any JSON in, checked by the service (names, values, reserved headers)."""


@extend_schema_field({"type": "array", "items": {"type": "string"}, "nullable": True})
class ToolNamesField(serializers.JSONField):
    """Any JSON in, checked by the service."""


class McpServerWriteSerializer(StrictSerializer):
    """POST body; PATCH takes any subset of the same fields (`partial=True`)."""

    name = serializers.CharField(max_length=32, trim_whitespace=False,
                                 validators=[RegexValidator(NAME_PATTERN, f"must be {_NAME_RULE}")],
                                 help_text=_NAME_RULE + "; unique in the org")
    url = serializers.CharField(max_length=2048, trim_whitespace=False,
                                help_text="the streamable HTTP endpoint (http or https, a public address)")
    headers = HeadersField(required=False,
                                    help_text="header name → value, sent with every request; values are "
                                              "stored encrypted and never shown again")
    allowed_tools = ToolNamesField(required=False, allow_null=True,
                                          help_text="tool names the runs may call; null: all")
    require_approval = serializers.ChoiceField(choices=McpServer.Approval.choices, required=False)
    timeout_seconds = serializers.IntegerField(min_value=MIN_TIMEOUT_SECONDS, max_value=MAX_TIMEOUT_SECONDS,
                                               required=False)


class McpServerSerializer(serializers.ModelSerializer):
    header_names = serializers.ListField(child=serializers.CharField(), read_only=True)
    allowed_tools = serializers.ListField(child=serializers.CharField(), allow_null=True, read_only=True)

    class Meta:
        model = McpServer
        fields = ["id", "name", "url", "header_names", "allowed_tools", "require_approval", "timeout_seconds",
                  "created_at"]


class McpToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    input_schema = serializers.DictField()
    read_only = serializers.BooleanField(help_text="the tool's readOnlyHint annotation")
