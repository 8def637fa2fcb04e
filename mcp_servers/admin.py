"""Admin for MCP servers. Header values are write-only: neither they nor their ciphertext is ever
rendered, and error reports mask them (sensitive_post_parameters)."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from arkloop.errors import ValidationFailed
from mcp_servers.headers import headers_check, headers_seal
from mcp_servers.models import McpServer
from mcp_servers.services import check_mcp_server_allowed_tools, check_mcp_server_url


class McpServerForm(forms.ModelForm):
    headers = forms.CharField(
        label="Headers", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text='Write-only: a JSON object such as {"Authorization": "Bearer …"}, stored encrypted and never '
                  "shown. Replaces every stored header; leave blank to keep them.")
    clear_headers = forms.BooleanField(label="Remove the stored headers", required=False)

    class Meta:
        model = McpServer
        fields = ["org", "name", "url", "allowed_tools", "require_approval", "timeout_seconds"]

    def clean_url(self) -> str:
        return _checked(check_mcp_server_url, self.cleaned_data["url"])

    def clean_allowed_tools(self) -> list[str] | None:
        return _checked(check_mcp_server_allowed_tools, self.cleaned_data["allowed_tools"])

    def clean_headers(self) -> dict[str, str] | None:
        raw = self.cleaned_data.get("headers")
        if not raw:
            return None
        try:
            headers = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("must be a JSON object of header names to values") from None
        problems = headers_check(headers)
        if problems:
            raise forms.ValidationError(problems)
        return headers


def _checked(check: Callable[[Any], Any], value: Any) -> Any:
    """A service's check as a form field's: its 422 messages become the field's errors."""
    try:
        return check(value)
    except ValidationFailed as exc:
        raise forms.ValidationError([m for messages in exc.details["fields"].values() for m in messages]) from None


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    form = McpServerForm
    list_display = ["name", "org", "url", "require_approval", "timeout_seconds", "header_list", "created_at"]
    list_filter = ["require_approval", "org"]
    search_fields = ["name", "url"]
    readonly_fields = ["header_list", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["org", "name", "url", "allowed_tools", "require_approval", "timeout_seconds"]}),
        ("Headers", {"fields": ["header_list", "headers", "clear_headers"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="headers")
    def header_list(self, server: McpServer) -> str:
        return ", ".join(server.header_names) or "—"

    @method_decorator(sensitive_post_parameters("headers"))
    def changeform_view(self, request: HttpRequest, *args, **kwargs):
        return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: McpServer, form: McpServerForm, change: bool) -> None:
        if form.cleaned_data.get("headers") is not None:
            obj.header_names, obj.headers_encrypted = headers_seal(form.cleaned_data["headers"])
        elif form.cleaned_data.get("clear_headers"):
            obj.header_names, obj.headers_encrypted = [], ""
        super().save_model(request, obj, form, change)
