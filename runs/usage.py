"""Reads for cost and usage: totals of a set of runs, and the same totals grouped by day, org or model.

Used by the admin (the runs list's totals, the usage page) and by `manage.py usage_report`.
A run counts on the UTC day it was created; its totals are whatever the run has recorded so far.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

from runs.models import Run

Grouping = Literal["day", "org", "model"]
GROUPINGS: tuple[Grouping, ...] = ("day", "org", "model")


@dataclass(frozen=True)
class UsageRow:
    """The totals of one group of runs (`key` is a day, an org slug or a model name)."""

    key: str
    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal("0")
    credits: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _aggregates() -> dict:
    # Coalesce so an empty group sums to 0, not None, on every database.
    return {
        "runs": Count("id"),
        "input_tokens": Coalesce(Sum("total_input_tokens"), 0),
        "output_tokens": Coalesce(Sum("total_output_tokens"), 0),
        "cost_usd": Coalesce(Sum("total_cost_usd"), Decimal("0")),
        "credits": Coalesce(Sum("credits_used"), 0),
    }


def _row(key: str, values: dict) -> UsageRow:
    return UsageRow(key=key, runs=values["runs"], input_tokens=values["input_tokens"],
                    output_tokens=values["output_tokens"], cost_usd=Decimal(values["cost_usd"]),
                    credits=values["credits"])


def usage_totals(*, runs: QuerySet[Run]) -> UsageRow:
    """The totals of `runs` (any filtered queryset) in one aggregate query."""
    return _row("total", runs.order_by().aggregate(**_aggregates()))


def runs_in_period(*, since: dt.date, until: dt.date, org_id=None) -> QuerySet[Run]:
    """Runs created from `since` through `until` (both whole UTC days), optionally of one org."""
    start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    runs = Run.objects.filter(created_at__gte=start, created_at__lt=end)
    return runs.filter(org_id=org_id) if org_id else runs


def usage_by(*, runs: QuerySet[Run], by: Grouping) -> list[UsageRow]:
    """Totals of `runs` grouped by `by`, in one query: days in date order, orgs and models by cost."""
    if by == "day":
        grouped = runs.annotate(key=TruncDate("created_at")).values("key")
    elif by == "org":
        grouped = runs.values(key=F("org__slug"))
    else:
        grouped = runs.values(key=F("model"))
    rows = [_row(str(values["key"] or ""), values)
            for values in grouped.order_by().annotate(**_aggregates())]
    if by == "day":
        return sorted(rows, key=lambda row: row.key)
    return sorted(rows, key=lambda row: (-row.cost_usd, -row.runs, row.key))


def usage_per_day(*, runs: QuerySet[Run], since: dt.date, until: dt.date) -> list[UsageRow]:
    """One row per day from `since` through `until`, days without runs included as zeros."""
    found = {row.key: row for row in usage_by(runs=runs, by="day")}
    days = (since + dt.timedelta(days=n) for n in range((until - since).days + 1))
    return [found.get(day.isoformat(), UsageRow(key=day.isoformat())) for day in days]
