"""Admin for orgs, memberships and API keys. Keys show their prefix only: never a hash or plaintext."""
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from arkloop.models import ApiKey, Membership, Org, User
from arkloop.services import api_key_revoke


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Org)
class OrgAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "org", "role", "created_at"]
    list_filter = ["role", "org"]
    search_fields = ["user__email", "user__username", "org__slug"]
    autocomplete_fields = ["user", "org"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys can be renamed and revoked here, never un-revoked (`revoked_at` is read-only)."""

    list_display = ["prefix", "name", "membership", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["membership__org"]
    search_fields = ["prefix", "name", "membership__user__email"]
    fields = ["prefix", "name", "membership", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "membership", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_selected_keys"]

    def has_add_permission(self, request) -> bool:
        return False  # keys are made by the API or `manage.py create_api_key`, which show the plaintext once

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_selected_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            api_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s); revoking cannot be undone.")


@admin.register(User)
class ArkloopUserAdmin(UserAdmin):
    pass
