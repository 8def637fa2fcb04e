"""GET /v1/runs/{id}, GET /v1/runs (filters, keyset pages, Link) and GET /v1/threads/{id}/runs."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from runs.models import Run
from tests.runs.stories import finish, start_run, thread_with_question

RUN_FIELDS = {"run_id", "org_id", "thread_id", "status", "persona_id", "route_id", "model", "retry_of",
              "total_input_tokens", "total_output_tokens", "total_cost_usd", "duration_ms", "cache_hit_rate",
              "credits_used", "error_class", "created_at", "completed_at", "failed_at", "cancelled_at",
              "created_by_user_id", "created_by_user_name", "created_by_email", "trace_id", "limits"}


def runs(actor, query=""):
    response = actor.client.get(f"/v1/runs{query}")
    assert response.status_code == 200, response.content
    return response


def ids(response):
    return [r["run_id"] for r in response.json()]


def test_a_new_run_has_exactly_the_run_object_fields_with_zero_totals(alice):
    thread_id = thread_with_question(alice)
    run_id = start_run(alice, thread_id)
    run = alice.client.get(f"/v1/runs/{run_id}").json()
    assert set(run) == RUN_FIELDS
    assert (run["run_id"], run["thread_id"], run["org_id"]) == (run_id, thread_id, str(alice.org.id))
    assert (run["status"], run["persona_id"], run["route_id"], run["retry_of"]) == (
        "running", Run.objects.get(pk=run_id).persona_id, "stub", None)
    assert (run["total_input_tokens"], run["total_output_tokens"], run["total_cost_usd"], run["credits_used"]) == (
        0, 0, 0, 0)
    assert run["duration_ms"] is run["cache_hit_rate"] is run["error_class"] is run["completed_at"] is None
    assert (run["created_by_user_id"], run["created_by_email"]) == (str(alice.user.id), "alice@acme.test")
    assert run["created_by_user_name"] and run["created_at"].endswith("Z") and len(run["trace_id"]) == 32


def test_a_completed_run_shows_totals_as_numbers_and_its_duration(alice):
    run_id = start_run(alice, thread_with_question(alice))
    Run.objects.filter(pk=run_id).update(total_input_tokens=1000, total_cached_input_tokens=400,
                                         total_output_tokens=500, total_cost_usd=Decimal("0.005"), credits_used=5)
    finish(run_id)
    run = alice.client.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "completed" and run["completed_at"].endswith("Z")
    assert (run["total_cost_usd"], run["cache_hit_rate"], run["credits_used"]) == (0.005, 0.4, 5)
    assert isinstance(run["duration_ms"], int) and run["duration_ms"] >= 0
    assert run["failed_at"] is run["cancelled_at"] is run["error_class"] is None


def test_a_failed_run_shows_its_error_class(alice):
    run_id = start_run(alice, thread_with_question(alice))
    finish(run_id, "run.failed", error_class="provider.unavailable", message="down")
    Run.objects.filter(pk=run_id).update(error_class="provider.unavailable")
    run = alice.client.get(f"/v1/runs/{run_id}").json()
    assert (run["status"], run["error_class"]) == ("failed", "provider.unavailable")
    assert run["failed_at"] and run["completed_at"] is None


@pytest.mark.parametrize("run_id", ["nope", "00000000-0000-0000-0000-000000000000", "x:status"])
def test_unknown_run_is_404_runs_not_found(alice, run_id):
    response = alice.client.get(f"/v1/runs/{run_id}")
    assert response.status_code == 404
    assert response.json()["code"] in {"runs.not_found", "http.not_found"}


def test_lists_are_newest_first(alice):
    thread_ids = [thread_with_question(alice) for _ in range(3)]
    created = [start_run(alice, t) for t in thread_ids]
    assert ids(runs(alice)) == created[::-1]
    finish(created[2])
    second = start_run(alice, thread_ids[2])
    listed = alice.client.get(f"/v1/threads/{thread_ids[2]}/runs").json()
    assert [r["run_id"] for r in listed] == [second, created[2]]
    assert {"run_id", "status", "created_at"} <= set(listed[0])
    assert [r["run_id"] for r in alice.client.get(f"/v1/threads/{thread_ids[2]}/runs?limit=1").json()] == [second]


def test_pages_follow_the_link_header_until_the_last_page(alice):
    created = [start_run(alice, thread_with_question(alice)) for _ in range(5)]
    first = runs(alice, "?limit=2&status=running")
    assert ids(first) == created[::-1][:2]
    link = first["Link"]
    assert link.endswith('>; rel="next"') and f"before={created[3]}" in link and "status=running" in link
    second = alice.client.get(link[1:link.index(">")])
    assert ids(second) == created[::-1][2:4]
    third = alice.client.get(second["Link"][1:second["Link"].index(">")])
    assert ids(third) == created[:1]
    assert not third.has_header("Link")


def test_keyset_pages_are_stable_while_runs_are_created_between_requests(alice):
    created = [start_run(alice, thread_with_question(alice)) for _ in range(4)]
    first = runs(alice, "?limit=2")
    newcomers = [start_run(alice, thread_with_question(alice)) for _ in range(3)]
    second = runs(alice, f"?limit=2&before={ids(first)[-1]}")
    assert ids(first) + ids(second) == created[::-1]
    assert ids(runs(alice, "?limit=3")) == newcomers[::-1]


def test_runs_created_in_the_same_instant_are_ordered_by_id(alice):
    created = [start_run(alice, thread_with_question(alice)) for _ in range(4)]
    Run.objects.filter(pk__in=created).update(created_at=timezone.now())
    expected = sorted(created, reverse=True)
    pages = [ids(runs(alice, "?limit=1"))]
    while len(pages) < 4:
        pages.append(ids(runs(alice, f"?limit=1&before={pages[-1][0]}")))
    assert [p[0] for p in pages] == expected


def test_filters_by_status_thread_persona_and_model(alice):
    one, two = thread_with_question(alice), thread_with_question(alice)
    done = start_run(alice, one)
    finish(done)
    careful = start_run(alice, two, {"persona_id": "careful"})
    Run.objects.filter(pk=done).update(model="other-model")
    assert ids(runs(alice, "?status=completed")) == [done]
    assert ids(runs(alice, "?status=running")) == [careful]
    assert ids(runs(alice, f"?thread_id={one}")) == [done]
    careful_id = Run.objects.get(pk=careful).persona_id
    assert ids(runs(alice, "?persona_id=careful")) == ids(runs(alice, f"?persona_id={careful_id}")) == [careful]
    assert ids(runs(alice, "?model=other-model")) == [done]
    assert ids(runs(alice, "?status=failed")) == []


def test_since_and_until_bound_the_creation_time(alice):
    old, new = (start_run(alice, thread_with_question(alice)) for _ in range(2))
    Run.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(days=2))
    cut = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(runs(alice, f"?since={cut}")) == [new]
    assert ids(runs(alice, f"?until={cut}")) == [old]


@pytest.mark.parametrize("query,field", [("status=finished", "status"), ("status=", None),
                                         ("thread_id=zzz", "thread_id"), ("since=yesterday", "since"),
                                         ("limit=0", "limit"), ("limit=201", "limit"), ("limit=x", "limit"),
                                         ("before=not-a-run", "before")])
def test_invalid_query_parameters_are_422(alice, query, field):
    start_run(alice, thread_with_question(alice))
    response = alice.client.get(f"/v1/runs?{query}")
    if field is None:  # an empty filter is no filter
        assert response.status_code == 200
        return
    assert response.status_code == 422
    assert field in response.json()["details"]["fields"]


def test_members_see_their_own_runs_and_admins_see_the_orgs(alice, bob):
    alices = start_run(alice, thread_with_question(alice))
    bobs = start_run(bob, thread_with_question(bob))
    assert ids(runs(bob)) == [bobs]
    assert ids(runs(alice)) == [bobs, alices]
    assert bob.client.get(f"/v1/runs/{alices}").status_code == 404
    assert alice.client.get(f"/v1/runs/{bobs}").json()["created_by_email"] == "bob@acme.test"


def test_a_member_does_not_see_an_admins_run_on_their_own_thread(alice, bob):
    thread_id = thread_with_question(bob)
    alices = start_run(alice, thread_id)
    assert bob.client.get(f"/v1/threads/{thread_id}/runs").json() == []
    assert bob.client.get(f"/v1/runs/{alices}").status_code == 404


def test_the_list_reads_creators_without_a_query_per_run(alice, bob, django_assert_max_num_queries):
    for actor in (alice, bob, alice, bob, alice):
        start_run(actor, thread_with_question(actor))
    with django_assert_max_num_queries(4):
        assert len(runs(alice).json()) == 5
