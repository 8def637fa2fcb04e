"""Admin for personas and routes. A route's API key is write-only: neither it nor its ciphertext
is ever rendered, and error reports mask it (sensitive_post_parameters). Credentials and
base_url are edited by superusers only; a change of base_url or provider removes a stored key."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from personas.credentials import API_KEY_ENV_RULE, api_key_env_allowed
from personas.models import Persona, Route
from personas.services import route_forget_key_if_moved, route_set_api_key
from runs.limits import LimitsInvalid, limits_parse

BUILTIN_EDITABLE = {"is_active"}


class PersonaForm(forms.ModelForm):
    class Meta:
        model = Persona
        fields = "__all__"  # the admin decides what is shown

    def clean_limits(self) -> dict:
        """The same rules as a persona file's `limits` (runs.limits)."""
        try:
            return limits_parse(self.cleaned_data.get("limits") or {})
        except LimitsInvalid as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Persona)
class PersonaAdmin(admin.ModelAdmin):
    form = PersonaForm
    list_display = ["public_id", "title", "org", "route_id", "is_active", "is_builtin", "updated_at"]
    list_filter = ["is_builtin", "is_active", "org", "route_id"]
    search_fields = ["key", "title", "description"]
    readonly_fields = ["is_builtin", "source_hash", "created_at", "updated_at"]

    @admin.display(description="persona id", ordering="key")
    def public_id(self, persona: Persona) -> str:
        return persona.public_id

    def get_readonly_fields(self, request: HttpRequest, obj: Persona | None = None) -> list[str]:
        # Built-ins belong to their YAML file (sync_personas); only switching them off is allowed here.
        if obj is not None and obj.is_builtin:
            return [f.name for f in Persona._meta.fields if f.name not in BUILTIN_EDITABLE]
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Persona | None = None) -> bool:
        return not (obj is not None and obj.is_builtin) and super().has_delete_permission(request, obj)


ROUTE_FIELDS = ["id", "org", "provider", "model", "base_url", "api_key_env", "price_input", "price_cached_input",
                "price_output", "context_window", "priority", "fallback", "is_active"]
# Where a route's key goes and where it comes from: superusers only. Staff who could point a
# route with a stored key at their own host, or name any server variable as its key, could read
# the server's secrets.
SUPERUSER_ONLY = ["base_url", "api_key_env"]


class StaffRouteForm(forms.ModelForm):
    """The route form of staff who are not superusers: no credentials."""

    class Meta:
        model = Route
        fields = ROUTE_FIELDS


class RouteForm(StaffRouteForm):
    """The superuser's route form: credentials too (the key write-only)."""

    api_key = forms.CharField(
        label="API key", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: stored encrypted and never shown. Leave blank to keep the current key "
                  "(changing base_url or provider removes it).")
    clear_api_key = forms.BooleanField(label="Remove the stored API key", required=False)

    def clean_api_key_env(self) -> str:
        name = self.cleaned_data.get("api_key_env", "")
        if name and not api_key_env_allowed(name):
            raise forms.ValidationError(API_KEY_ENV_RULE)
        return name


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    form = RouteForm
    list_display = ["id", "provider", "model", "org", "priority", "price_input", "price_cached_input",
                    "price_output", "fallback", "credentials", "is_active"]
    list_filter = ["provider", "is_active", "org"]
    search_fields = ["id", "model", "base_url"]
    readonly_fields = ["credentials", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["id", "org", "provider", "model", "base_url", "context_window", "priority", "fallback",
                           "is_active"]}),
        ("Credentials", {"fields": ["credentials", "api_key", "clear_api_key", "api_key_env"],
                         "description": "A stored key wins over the environment variable. Superusers only."}),
        ("Prices (USD per million tokens)", {"fields": ["price_input", "price_cached_input", "price_output"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="credentials")
    def credentials(self, route: Route) -> str:
        return route.credential_source

    def get_form(self, request: HttpRequest, obj: Route | None = None, change: bool = False, **kwargs):
        kwargs["form"] = RouteForm if request.user.is_superuser else StaffRouteForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Route | None = None):
        if request.user.is_superuser:
            return self.fieldsets
        key_fields = {"api_key", "clear_api_key"}
        return [(name, {**options, "fields": [f for f in options["fields"] if f not in key_fields]})
                for name, options in self.fieldsets]

    def get_readonly_fields(self, request: HttpRequest, obj: Route | None = None) -> list[str]:
        fields = [*self.readonly_fields, "id"] if obj is not None else [*self.readonly_fields]
        return fields if request.user.is_superuser else [*fields, *SUPERUSER_ONLY]

    @method_decorator(sensitive_post_parameters("api_key"))
    def changeform_view(self, request: HttpRequest, *args, **kwargs):
        return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Route, form: StaffRouteForm, change: bool) -> None:
        if change:
            route_forget_key_if_moved(route=obj, changed=form.changed_data)
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("api_key"):
            route_set_api_key(route=obj, plaintext=form.cleaned_data["api_key"])
        elif form.cleaned_data.get("clear_api_key"):
            route_set_api_key(route=obj, plaintext=None)
