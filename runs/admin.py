"""Staff console for runs: the list with its totals, the run page with its live timeline, the usage page.

Runs and events are read-only here: runs change only through the runner and the services, events
only through `runs.events.event_append`. The one write staff can make is "Cancel selected runs",
through the same service the API uses. Extra pages (usage, the timeline feed) are in admin_views.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_field, lookup_field
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from runs import admin_views
from runs.limits import LIMIT_NAMES
from runs.models import Run, RunEvent
from runs.timeline import assembled_reply, event_item, events_after
from runs.usage import usage_totals

TIMELINE_PAGE_EVENTS = 1000  # the run page renders this many events; the live feed fetches more
# The run page's fields that change while a run executes; the live feed sends them as the page shows
# them, so the status, usage and times on the page follow the run as its timeline does.
LIVE_FIELDS = ("status", "error_class", "total_input_tokens", "total_output_tokens", "total_cached_input_tokens",
               "cache_hit_rate", "total_cost_usd", "credits_used", "duration", "completed_at", "failed_at",
               "cancelled_at", "last_seq", "attempt", "lease_owner", "lease_expires_at", "waiting_since")


def format_duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min {ms % 60_000 // 1000} s"


def format_cost(cost) -> str:
    return f"${cost:,.4f}"


class ReadOnlyAdminMixin:
    """No add, change or delete for anyone, superusers included; viewing stays allowed."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["short_id", "status", "org", "thread_link", "persona", "model", "input_tokens",
                    "output_tokens", "cost", "credits", "duration", "creator", "created_at"]
    list_display_links = ["short_id"]
    list_filter = ["status", "org", "model", "persona_id"]
    list_select_related = ["org", "thread", "created_by"]
    date_hierarchy = "created_at"
    search_fields = ["created_by__email"]
    search_help_text = "A run id, a thread id, or the creator's email."
    ordering = ["-created_at", "-id"]
    list_per_page = 100
    actions = ["cancel_selected_runs"]
    change_list_template = "admin/runs/run/change_list.html"
    change_form_template = "admin/runs/run/change_form.html"
    fieldsets = [
        (None, {"fields": ["id", "status", "org", "thread", "created_by", "trace_id"]}),
        ("Agent", {"fields": ["persona_id", "route_id", "model", "retry_of", "retried_by", "error_class",
                              "effective_limits"]}),
        ("Usage", {"fields": ["total_input_tokens", "total_output_tokens", "total_cached_input_tokens",
                              "cache_hit_rate", "total_cost_usd", "credits_used", "duration"]}),
        ("Times", {"fields": ["created_at", "completed_at", "failed_at", "cancelled_at"]}),
        ("Runner", {"classes": ["collapse"],
                    "fields": ["last_seq", "attempt", "lease_owner", "lease_expires_at", "waiting_since"]}),
    ]
    readonly_fields = ["id", "created_at", "retried_by", "cache_hit_rate", "duration", "effective_limits"]

    # -- the list ---------------------------------------------------------------------------------

    @admin.display(description="run", ordering="id")
    def short_id(self, run: Run) -> str:
        return str(run.id)[:8]

    @admin.display(description="thread", ordering="thread_id")
    def thread_link(self, run: Run) -> str:
        url = reverse("admin:threads_thread_change", args=[run.thread_id])
        return format_html('<a href="{}" title="{}">{}</a>', url, run.thread_id, Truncator(str(run.thread)).chars(24))

    @admin.display(description="persona", ordering="persona_id")
    def persona(self, run: Run) -> str:
        return run.persona_id

    @admin.display(description="in tokens", ordering="total_input_tokens")
    def input_tokens(self, run: Run) -> int:
        return run.total_input_tokens

    @admin.display(description="out tokens", ordering="total_output_tokens")
    def output_tokens(self, run: Run) -> int:
        return run.total_output_tokens

    @admin.display(description="credits", ordering="credits_used")
    def credits(self, run: Run) -> int:
        return run.credits_used

    @admin.display(description="cost", ordering="total_cost_usd")
    def cost(self, run: Run) -> str:
        return format_cost(run.total_cost_usd)

    @admin.display(description="duration")
    def duration(self, run: Run) -> str:
        return format_duration(run.duration_ms)

    @admin.display(description="creator", ordering="created_by__email")
    def creator(self, run: Run) -> str:
        return run.created_by.email or run.created_by.username

    @admin.display(description="cache hit rate")
    def cache_hit_rate(self, run: Run) -> str:
        rate = run.cache_hit_rate
        return "—" if rate is None else f"{rate:.1%}"

    @admin.display(description="limits")
    def effective_limits(self, run: Run) -> str:
        """The run's effective limits, as fixed when it was created."""
        limits = run.limits or {}
        return " · ".join(f"{name} {'—' if limits.get(name) is None else limits[name]}" for name in LIMIT_NAMES)

    @admin.display(description="retried by")
    def retried_by(self, run: Run) -> str:
        retries = list(run.retries.order_by("created_at", "id"))
        if not retries:
            return "—"
        return format_html_join(", ", '<a href="{}">{}</a>',
                                ((reverse("admin:runs_run_change", args=[r.pk]), f"{str(r.pk)[:8]} ({r.status})")
                                 for r in retries))

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        """Emails by substring; a term that is a UUID also matches the run id and the thread id."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        try:
            wanted = uuid.UUID(term)
        except ValueError:
            return results, may_have_duplicates
        by_id = queryset.filter(pk=wanted) | queryset.filter(thread_id=wanted)
        return results | by_id, may_have_duplicates

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:  # not on redirects, e.g. after an action
            # One aggregate query over the filtered list, whatever the page size.
            response.context_data["run_totals"] = usage_totals(runs=changelist.queryset)
        return response

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_selected_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        from runs.services import run_cancel  # the API's own cancel, so both behave the same

        runs = [run for run in queryset if not run.is_terminal]
        for run in runs:
            run_cancel(run=run, reason=f"cancelled from the staff console by {request.user.get_username()}")
        skipped = queryset.count() - len(runs)
        self.message_user(request, f"Cancel requested for {len(runs)} run(s); "
                                   f"{skipped} already finished run(s) left as they were.", messages.SUCCESS)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("runs.change_run")

    # -- the run page -----------------------------------------------------------------------------

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        run = self.get_object(request, object_id)
        if run is not None:
            extra_context = {**(extra_context or {}), **self._timeline_context(run)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _timeline_context(self, run: Run) -> dict[str, Any]:
        events = events_after(run_id=run.pk)
        shown = events[:TIMELINE_PAGE_EVENTS]
        return {
            "timeline": [event_item(event) for event in shown],
            "timeline_hidden": len(events) - len(shown),
            "timeline_last_seq": shown[-1].seq if shown else 0,
            "reply": assembled_reply(events),
            "run_is_live": not run.is_terminal,
            "run_status": run.status,
            "run_title": str(run),
            "timeline_feed_url": reverse("admin:runs_run_timeline", args=[run.pk]),
        }

    def live_fields(self, run: Run) -> dict[str, str]:
        """The LIVE_FIELDS of `run` as plain text, rendered as the run page's read-only fields are."""
        empty = self.get_empty_value_display()
        texts = {}
        for name in LIVE_FIELDS:
            field, _, value = lookup_field(name, run, self)
            text = display_for_field(value, field, empty) if field is not None else value
            texts[name] = str(empty if text is None else text)
        return texts

    # -- extra pages ------------------------------------------------------------------------------

    def get_urls(self) -> list:
        extra = [
            path("usage/", self.admin_site.admin_view(self.usage_view), name="runs_run_usage"),
            path("<uuid:run_id>/timeline.json", self.admin_site.admin_view(self.timeline_view),
                 name="runs_run_timeline"),
        ]
        return extra + super().get_urls()

    def usage_view(self, request: HttpRequest) -> TemplateResponse:
        return admin_views.usage_page(request, model_admin=self)

    def timeline_view(self, request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
        return admin_views.timeline_feed(request, model_admin=self, run_id=run_id)


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["run_id", "seq", "type", "created_at"]
    list_filter = ["type"]
    list_select_related = False
    ordering = ["-id"]
    fields = ["run", "seq", "type", "created_at", "data"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["run"]
    show_full_result_count = False  # event tables get large: skip the unfiltered COUNT(*)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        """A run id finds that run's events."""
        try:
            return queryset.filter(run_id=uuid.UUID(search_term.strip())), False
        except ValueError:
            return queryset, False

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["run__id"]  # shows the search box; the lookup itself is get_search_results above
