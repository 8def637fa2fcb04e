"""Usage selectors and the admin usage page: cost, credits, tokens and runs per day, org and model."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from runs.admin_views import bar_chart, nice_step
from runs.usage import UsageRow, runs_in_period, usage_by, usage_per_day, usage_totals
from tests.console.builders import make_run

USAGE = reverse("admin:runs_run_usage")


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


@pytest.fixture
def period_runs(alice, charlie):
    """Four runs over three days in two orgs and two models, and one before the period."""
    today = timezone.now().date()
    make_run(org=alice.org, user=alice.user, model="gpt-x", status="completed", cost="1.00",
             input_tokens=100, output_tokens=10, credits=1000, created_at=at(today))
    make_run(org=alice.org, user=alice.user, model="claude-y", status="completed", cost="0.25",
             input_tokens=40, output_tokens=4, credits=250, created_at=at(today, 0))
    make_run(org=charlie.org, user=charlie.user, model="gpt-x", status="failed", cost="2.00",
             input_tokens=200, output_tokens=20, credits=2000, created_at=at(today - dt.timedelta(days=2), 23))
    make_run(org=alice.org, user=alice.user, model="gpt-x", status="running",
             created_at=at(today - dt.timedelta(days=2)))
    make_run(org=alice.org, user=alice.user, model="gpt-x", status="completed", cost="9.00",
             created_at=at(today - dt.timedelta(days=40)))
    return today


def test_usage_groups_by_day_org_and_model(period_runs):
    today = period_runs
    runs = runs_in_period(since=today - dt.timedelta(days=2), until=today)

    days = usage_per_day(runs=runs, since=today - dt.timedelta(days=2), until=today)
    assert [(row.runs, row.cost_usd) for row in days] == [(2, Decimal("2")), (0, 0), (2, Decimal("1.25"))]
    by_org = usage_by(runs=runs, by="org")
    assert [(row.key, row.runs, row.credits) for row in by_org] == [("globex", 1, 2000), ("acme", 3, 1250)]
    by_model = usage_by(runs=runs, by="model")
    assert [(row.key, row.input_tokens, row.output_tokens) for row in by_model] == [("gpt-x", 300, 30),
                                                                                  ("claude-y", 40, 4)]
    assert usage_totals(runs=runs).cost_usd == Decimal("3.25")


def test_usage_totals_of_nothing_are_zero(db):
    total = usage_totals(runs=runs_in_period(since=dt.date(2020, 1, 1), until=dt.date(2020, 1, 2)))
    assert (total.runs, total.cost_usd, total.credits, total.tokens) == (0, Decimal("0"), 0, 0)


def test_usage_page_defaults_to_the_last_30_days_with_chart_and_tables(staff_client, period_runs):
    response = staff_client.get(USAGE)
    text = re.sub(r"\s+", " ", response.content.decode())

    assert response.status_code == 200
    assert '<strong id="usage-cost">$3.2500</strong>' in text
    assert '<strong id="usage-runs">4</strong>' in text and '<strong id="usage-credits">3250</strong>' in text
    assert text.count('<rect class="bar"') == 60  # 30 days × two charts
    assert f"<title>{period_runs.isoformat()}: $1.2500</title>" in text
    assert ">$0.50</text>" in text and ">$2.00</text>" in text  # gridlines at round steps of the top day
    assert "<td>globex</td><td class=\"num\">1</td><td class=\"num\">2.0000</td>" in text
    assert "<td>claude-y</td>" in text
    assert reverse("admin:runs_run_usage") in staff_client.get(reverse("admin:runs_run_changelist")).content.decode()


def test_usage_page_takes_a_period_and_an_org(staff_client, period_runs, alice):
    since = (period_runs - dt.timedelta(days=45)).isoformat()
    text = staff_client.get(USAGE, {"since": since, "until": period_runs.isoformat(), "org": "acme"}).content.decode()
    assert '<strong id="usage-cost">$10.2500</strong>' in text
    assert text.count('<rect class="bar"') == 2 * 46
    assert "<td>globex</td>" not in text


def test_usage_page_rejects_a_backwards_period(staff_client, db):
    response = staff_client.get(USAGE, {"since": "2024-05-02", "until": "2024-05-01"})
    assert response.status_code == 200
    assert "The period must start before it ends." in response.content.decode()
    assert 'id="usage-totals"' not in response.content.decode()


def test_usage_page_is_for_staff_only(client, alice):
    assert client.get(USAGE).status_code == 302
    client.force_login(alice.user)
    assert client.get(USAGE).status_code == 302


@pytest.mark.parametrize(("value", "whole", "step"), [
    ("0", False, "1"), ("0.0175", False, "0.02"), ("0.021", False, "0.025"), ("0.3", False, "0.5"),
    ("0.75", True, "1"), ("2.25", True, "5"), ("21", False, "25"), ("100", False, "100"), ("101", False, "200"),
])
def test_chart_steps_are_round_numbers(value, whole, step):
    assert nice_step(Decimal(value), whole=whole) == Decimal(step)


def test_chart_gridlines_of_run_counts_are_whole_numbers():
    rows = [UsageRow(key="2024-01-01", runs=3), UsageRow(key="2024-01-02", runs=0)]
    chart = bar_chart(rows, value=lambda row: Decimal(row.runs), whole=True)
    assert [tick.label for tick in chart.ticks] == ["0", "1", "2", "3", "4"]
    assert chart.bars[0].height == pytest.approx((chart.plot_bottom - 10) * 3 / 4)
    assert chart.bars[1].height == 0 and chart.bars[0].title == "2024-01-01: 3"
