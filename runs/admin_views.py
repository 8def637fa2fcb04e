"""Admin pages beyond the model pages: the usage page and the run page's live timeline feed.

Both are mounted under /admin/runs/run/ by RunAdmin.get_urls and wrapped in `admin_view`, so they
need a staff session (no API key ever reaches the browser) and also check view permission on runs.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from arkloop.errors import ValidationFailed
from arkloop.models import Org
from runs.models import Run, RunEvent
from runs.stream.views import check_seq
from runs.timeline import assembled_reply, event_item, events_after
from runs.usage import UsageRow, runs_in_period, usage_by, usage_per_day, usage_totals

if TYPE_CHECKING:
    from runs.admin import RunAdmin

FEED_BATCH = 500
DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366
REPLY_EVENT_TYPES = ("message.delta", "llm.turn.completed", "run.restarted")


# -- the live timeline feed ---------------------------------------------------------------------

def timeline_feed(request: HttpRequest, *, model_admin: RunAdmin, run_id: uuid.UUID) -> JsonResponse:
    """Events after `?after_seq=N` as JSON, for the run page's script to append while the run is live,
    with the run's current status, totals and times (`run`), so the page's fields follow it too."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        raise Http404("run not found")
    try:
        after_seq = check_seq(request.GET.get("after_seq", "0"), field="after_seq")
    except ValidationFailed as error:
        return JsonResponse({"error": f"after_seq {error.details['fields']['after_seq'][0]}"}, status=400)
    events = events_after(run_id=run.pk, after_seq=after_seq, limit=FEED_BATCH + 1)
    more = len(events) > FEED_BATCH
    events = events[:FEED_BATCH]
    body = {"status": run.status, "live": not run.is_terminal or more,
            "events": [event_item(event) for event in events], "more": more,
            "run": {"title": str(run), "fields": model_admin.live_fields(run)}}
    if any(event.type in REPLY_EVENT_TYPES for event in events):
        reply_events = RunEvent.objects.filter(run_id=run.pk, type__in=REPLY_EVENT_TYPES).order_by("seq")
        body["reply"] = assembled_reply(reply_events)
    return JsonResponse(body)


# -- the usage page -----------------------------------------------------------------------------

class UsagePeriodForm(forms.Form):
    since = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    org = forms.ModelChoiceField(queryset=Org.objects.order_by("slug"), required=False,
                                 empty_label="all orgs", to_field_name="slug")

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The period must start before it ends.")
        if since and until and (until - since).days >= MAX_PERIOD_DAYS:
            raise forms.ValidationError(f"Choose a period of at most {MAX_PERIOD_DAYS} days.")
        return data


def default_period(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    today = today or timezone.now().date()
    return today - dt.timedelta(days=DEFAULT_PERIOD_DAYS - 1), today


def usage_page(request: HttpRequest, *, model_admin: RunAdmin) -> TemplateResponse:
    """Cost, credits, tokens and runs per day for a period (default: the last 30 days), per org, per model."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    since, until = default_period()
    form = UsagePeriodForm(request.GET or {"since": since, "until": until})
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts,
               "title": "Usage", "form": form}
    if form.is_valid():
        context.update(_usage_context(form.cleaned_data))
    return TemplateResponse(request, "admin/runs/run/usage.html", context)


def _usage_context(period: dict) -> dict:
    org = period.get("org")
    runs = runs_in_period(since=period["since"], until=period["until"], org_id=org.pk if org else None)
    days = usage_per_day(runs=runs, since=period["since"], until=period["until"])
    return {
        "since": period["since"], "until": period["until"], "org": org,
        "totals": usage_totals(runs=runs),
        "days": days,
        "by_org": usage_by(runs=runs, by="org"),
        "by_model": usage_by(runs=runs, by="model"),
        "cost_chart": bar_chart(days, value=lambda row: row.cost_usd, prefix="$", min_places=2),
        "runs_chart": bar_chart(days, value=lambda row: Decimal(row.runs), whole=True),
    }


# -- the server-rendered SVG bar chart ------------------------------------------------------------

@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str
    label: str  # the day under the bar, empty when there is no room for it


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_bottom: int
    plot_right: int
    bars: list[Bar]
    ticks: list[Tick]


def nice_step(value: Decimal, *, whole: bool = False) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above `value` (whole numbers only if `whole`), so the
    gridlines land on round numbers."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        candidate = step.scaleb(exponent)
        if candidate >= value and not (whole and candidate != candidate.to_integral_value()):
            return candidate if not whole or candidate >= 1 else Decimal(1)
    return Decimal(10).scaleb(exponent)


def step_places(step: Decimal) -> int:
    """Decimal places needed to print multiples of `step` exactly (0.025 → 3, 5 → 0)."""
    return max(0, -step.normalize().as_tuple().exponent)


def bar_chart(rows: list[UsageRow], *, value: Callable[[UsageRow], Decimal], prefix: str = "",
              whole: bool = False, min_places: int = 0, width: int = 760, height: int = 240) -> Chart:
    """Bars for `value(row)` of each day under four round gridlines; coordinates in SVG user units."""
    left, right, top, bottom = 70, width - 10, 10, height - 30
    step = nice_step(max((value(row) for row in rows), default=Decimal(0)) / 4, whole=whole)
    top_value, places = step * 4, max(min_places, step_places(step))

    def label(amount: Decimal) -> str:
        return f"{prefix}{amount:,.{places}f}"

    slot = (right - left) / max(len(rows), 1)
    label_every = max(1, round(len(rows) / 10))
    bars = []
    for index, row in enumerate(rows):
        bar_height = float(value(row) / top_value) * (bottom - top)
        bars.append(Bar(x=left + index * slot + slot * 0.15, y=bottom - bar_height, width=slot * 0.7,
                        height=bar_height, title=f"{row.key}: {prefix}{value(row):,.{0 if whole else 4}f}",
                        label=row.key[5:] if index % label_every == 0 else ""))
    ticks = [Tick(y=bottom - (bottom - top) * n / 4, label=label(step * n)) for n in range(5)]
    return Chart(width=width, height=height, plot_left=left, plot_bottom=bottom, plot_right=right,
                 bars=bars, ticks=ticks)
