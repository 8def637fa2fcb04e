"""Admin for threads, with their messages inline."""
from django.contrib import admin

from threads.models import Message, Thread


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["created_at", "role", "content", "run", "hidden_at"]
    readonly_fields = ["created_at", "role", "content", "run", "hidden_at"]
    ordering = ["created_at", "id"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "org", "created_by", "created_at", "deleted_at"]
    list_filter = ["org"]
    list_select_related = ["org", "created_by"]
    search_fields = ["id", "title", "created_by__email"]
    readonly_fields = ["id", "org", "created_by", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [MessageInline]
