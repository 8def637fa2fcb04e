"""The runs list and run page in the admin, as staff use them."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from runs.events import event_append
from runs.models import Run, RunEvent
from tests.console.builders import make_run, play_run

CHANGELIST = reverse("admin:runs_run_changelist")


def page_text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_runs_list_shows_columns_and_totals_of_the_filtered_list(staff_client, alice, charlie):
    make_run(org=alice.org, user=alice.user, model="gpt-x", status="completed", cost="1.25",
             input_tokens=1000, output_tokens=200, credits=1250)
    make_run(org=alice.org, user=alice.user, model="claude-y", status="failed", cost="0.50",
             input_tokens=300, output_tokens=100, credits=500)
    make_run(org=charlie.org, user=charlie.user, model="gpt-x", status="completed", cost="2.00",
             input_tokens=50, output_tokens=5, credits=2000)

    everything = page_text(staff_client.get(CHANGELIST))
    assert "$3.7500" in everything and ">1350<" in everything and ">305<" in everything
    assert ">3750<" in everything
    assert "alice@acme.test" in everything and "charlie@globex.test" in everything

    only_gpt = page_text(staff_client.get(CHANGELIST, {"model": "gpt-x"}))
    assert "$3.2500" in only_gpt and ">1050<" in only_gpt and ">3250<" in only_gpt
    only_acme = page_text(staff_client.get(CHANGELIST, {"org__id__exact": str(alice.org.pk)}))
    assert "$1.7500" in only_acme and "charlie@globex.test" not in only_acme


def test_runs_list_searches_run_id_thread_id_and_email(staff_client, alice, charlie):
    mine = make_run(org=alice.org, user=alice.user)
    theirs = make_run(org=charlie.org, user=charlie.user)

    def found(term: str) -> set[str]:
        return {str(run.pk) for run in staff_client.get(CHANGELIST, {"q": term}).context["cl"].result_list}

    assert found(str(mine.pk)) == {str(mine.pk)}
    assert found(str(theirs.thread_id)) == {str(theirs.pk)}
    assert found("globex.test") == {str(theirs.pk)}
    assert found("not-a-uuid-nor-email") == set()


def test_runs_list_query_count_does_not_grow_with_the_page(staff_client, alice, bob):
    def queries_for(count: int) -> int:
        Run.objects.all().delete()
        for n in range(count):
            make_run(org=alice.org, user=(alice if n % 2 else bob).user, model=f"model-{n % 3}",
                     status="completed", cost="0.01")
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(CHANGELIST)
        assert len(response.context["cl"].result_list) == count
        return len(captured)

    few = queries_for(5)
    many = queries_for(50)
    assert many == few


# Measured for this page (session, user, orgs filter, two counts, the page, the totals, the date
# hierarchy and the model/persona filters). A change that adds a query per row or per filter fails.
PAGE_OF_FIFTY_QUERIES = 11


def test_query_count_is_pinned_for_a_page_of_fifty(staff_client, alice, django_assert_num_queries):
    for n in range(50):
        make_run(org=alice.org, user=alice.user, model=f"model-{n % 4}", status="completed")
    staff_client.get(CHANGELIST)  # warm caches that only the first request fills (content types)
    with django_assert_num_queries(PAGE_OF_FIFTY_QUERIES):
        response = staff_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 50


def test_cancel_selected_runs_uses_the_cancel_service(staff_client, alice):
    waiting = make_run(org=alice.org, user=alice.user)
    event_append(run_id=waiting.pk, type="run.started", data={})
    done = make_run(org=alice.org, user=alice.user, status="completed", cost="0.3")

    response = staff_client.post(CHANGELIST, {"action": "cancel_selected_runs",
                                              "_selected_action": [str(waiting.pk), str(done.pk)]}, follow=True)

    waiting.refresh_from_db()
    done.refresh_from_db()
    assert waiting.status == "cancelled"
    assert RunEvent.objects.filter(run=waiting).order_by("-seq").first().type == "run.cancelled"
    assert done.status == "completed" and not RunEvent.objects.filter(run=done).exists()
    assert "Cancel requested for 1 run(s); 1 already finished" in page_text(response)


def test_staff_without_change_permission_cannot_cancel(db, django_user_model, alice):
    from django.contrib.auth.models import Permission
    from django.test import Client

    viewer = django_user_model.objects.create_user(username="viewer", password="x-password-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_run"))
    client = Client()
    client.force_login(viewer)
    run = make_run(org=alice.org, user=alice.user)

    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert "cancel_selected_runs" not in response.content.decode()
    client.post(CHANGELIST, {"action": "cancel_selected_runs", "_selected_action": [str(run.pk)]})
    run.refresh_from_db()
    assert run.status == "running"


def test_run_page_shows_readonly_fields_timeline_reply_and_retry_chain(staff_client, alice):
    first = make_run(org=alice.org, user=alice.user, status="failed")
    run = make_run(org=alice.org, user=alice.user, thread=first.thread, retry_of=first)
    play_run(run, reply="The answer is 42")
    retry = make_run(org=alice.org, user=alice.user, thread=first.thread, retry_of=run, status="cancelled")

    response = staff_client.get(reverse("admin:runs_run_change", args=[run.pk]))
    text = page_text(response)

    assert response.status_code == 200
    assert "<input" not in re.sub(r'<input type="hidden"[^>]*>', "", text.split('id="run_form"')[1].split("</form>")[0])
    assert "Save" not in text.split('id="run_form"')[1]
    assert '<pre id="run-reply" class="run-reply">The answer is 42 </pre>' in text
    assert "calculator({&quot;expression&quot;: &quot;6*7&quot;})" in text
    assert "calculator → {&quot;value&quot;: 42}" in text
    assert "in 120 · out 30 · cached 20 · $0.0015 · 2 credits" in text
    assert text.count('class="event event-') == RunEvent.objects.filter(run=run).count()
    assert reverse("admin:threads_thread_change", args=[run.thread_id]) in text
    assert reverse("admin:runs_run_change", args=[first.pk]) in text
    assert reverse("admin:runs_run_change", args=[retry.pk]) in text
    assert 'data-live="false"' in text


def test_run_page_folds_large_payloads(staff_client, alice):
    run = make_run(org=alice.org, user=alice.user)
    event_append(run_id=run.pk, type="tool.result",
                 data={"tool_call_id": "c", "tool_name": "echo", "result": {"text": "x" * 2000}})
    text = page_text(staff_client.get(reverse("admin:runs_run_change", args=[run.pk])))
    assert "<details><summary>" in text and 'data-live="true"' in text


def test_timeline_feed_returns_events_after_a_seq_to_staff_only(staff_client, client, alice):
    run = make_run(org=alice.org, user=alice.user)
    for word in ("one", "two", "three"):
        event_append(run_id=run.pk, type="message.delta", data={"content": word})
    url = reverse("admin:runs_run_timeline", args=[run.pk])

    feed = staff_client.get(url, {"after_seq": 1}).json()
    assert [event["seq"] for event in feed["events"]] == [2, 3]
    assert feed["live"] is True and feed["reply"] == "onetwothree"

    assert client.get(url).status_code == 302  # anonymous: sent to the admin login
    alice_session = client
    alice_session.force_login(alice.user)  # an API user, not staff
    assert alice_session.get(url).status_code == 302


def test_timeline_feed_says_when_the_run_is_over(staff_client, alice):
    run = make_run(org=alice.org, user=alice.user)
    play_run(run, tool=False)
    last = RunEvent.objects.filter(run=run).order_by("-seq").first()
    feed = staff_client.get(reverse("admin:runs_run_timeline", args=[run.pk]), {"after_seq": last.seq}).json()
    assert {key: feed[key] for key in ("status", "live", "events", "more")} == {
        "status": "completed", "live": False, "events": [], "more": False}
    assert feed["run"]["title"] == f"run {run.pk} (completed)"


def readonly_texts(html: str) -> dict[str, str]:
    """The run page's read-only fields as text, by field name."""
    from html import unescape
    found = re.findall(r'class="form-row field-([a-z_]+)".*?<div class="readonly">(.*?)</div>', html, re.S)
    return {name: unescape(re.sub(r"<[^>]+>", "", value)).strip() for name, value in found}


def test_timeline_feed_sends_the_run_fields_as_the_run_page_shows_them(staff_client, alice):
    """While a live page follows the run, the feed's `run.fields` replace the page's fields: they
    must read exactly as a fresh page load would show them, totals included."""
    run = make_run(org=alice.org, user=alice.user)
    url = reverse("admin:runs_run_timeline", args=[run.pk])
    live = staff_client.get(url).json()["run"]
    assert live["title"] == f"run {run.pk} (running)" and live["fields"]["status"] == "Running"
    assert live["fields"]["completed_at"] == "-"

    play_run(run, tool=False)
    feed = staff_client.get(url).json()
    page = readonly_texts(staff_client.get(reverse("admin:runs_run_change", args=[run.pk])).content.decode())
    assert feed["run"]["fields"] == {name: page[name] for name in feed["run"]["fields"]}
    assert feed["run"]["fields"]["status"] == "Completed"
    assert feed["run"]["fields"]["total_input_tokens"] == "120" and feed["run"]["fields"]["credits_used"] == "2"
    assert feed["run"]["fields"]["completed_at"] != "-"


@pytest.mark.parametrize("after_seq", ["-1", "x", "9" * 19, "9" * 4300])
def test_timeline_feed_refuses_a_bad_or_overlong_cursor(staff_client, alice, after_seq):
    run = make_run(org=alice.org, user=alice.user)
    response = staff_client.get(reverse("admin:runs_run_timeline", args=[run.pk]), {"after_seq": after_seq})
    assert response.status_code == 400 and response.json()["error"].startswith("after_seq must be")


def test_timeline_feed_of_unknown_run_is_404(staff_client):
    import uuid
    assert staff_client.get(reverse("admin:runs_run_timeline", args=[uuid.uuid4()])).status_code == 404


def test_events_are_read_only_for_everyone(staff_client, alice):
    run = make_run(org=alice.org, user=alice.user)
    event = event_append(run_id=run.pk, type="message.delta", data={"content": "hi"})
    change_url = reverse("admin:runs_runevent_change", args=[event.pk])

    assert staff_client.get(reverse("admin:runs_runevent_changelist")).status_code == 200
    assert staff_client.get(reverse("admin:runs_runevent_add")).status_code == 403
    assert staff_client.post(change_url, {"type": "run.failed", "seq": 9}).status_code == 403
    assert staff_client.post(reverse("admin:runs_runevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.type == "message.delta"
    assert staff_client.get(change_url).status_code == 200


def test_runs_cannot_be_added_edited_or_deleted(staff_client, alice):
    run = make_run(org=alice.org, user=alice.user, cost="1")
    assert staff_client.get(reverse("admin:runs_run_add")).status_code == 403
    staff_client.post(reverse("admin:runs_run_change", args=[run.pk]), {"total_cost_usd": "0"})
    run.refresh_from_db()
    assert str(run.total_cost_usd) == "1.00000000"
    assert staff_client.post(reverse("admin:runs_run_delete", args=[run.pk]), {"post": "yes"}).status_code == 403


def test_admin_index_links_the_usage_page(staff_client):
    assert reverse("admin:runs_run_usage") in staff_client.get(reverse("admin:index")).content.decode()


@pytest.mark.parametrize("days_ago", [0, 3])
def test_date_hierarchy_filters_by_day(staff_client, alice, days_ago):
    when = timezone.now() - dt.timedelta(days=days_ago)
    run = make_run(org=alice.org, user=alice.user, created_at=when)
    response = staff_client.get(CHANGELIST, {"created_at__year": when.year, "created_at__month": when.month,
                                             "created_at__day": when.day})
    assert [r.pk for r in response.context["cl"].result_list] == [run.pk]
