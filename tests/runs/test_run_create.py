"""POST /v1/threads/{id}/runs (SPEC §4): the run and its run.started event, persona/route, limits."""
import pytest
from django.db import IntegrityError, transaction

from personas.models import Persona
from runs.models import Run, RunEvent, RunStatus
from tests.runs.stories import finish, start_run, thread_with_question


def test_create_answers_201_with_run_id_and_the_requests_trace_id(alice):
    thread_id = thread_with_question(alice)
    response = alice.client.post(f"/v1/threads/{thread_id}/runs", {})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"run_id", "trace_id"}
    assert body["trace_id"] == response["X-Trace-Id"]
    run = Run.objects.get(pk=body["run_id"])
    assert (run.status, run.trace_id, str(run.thread_id), run.created_by_id) == (
        RunStatus.RUNNING, body["trace_id"], thread_id, alice.user.id)


def test_the_first_event_is_run_started_with_persona_route_and_trace_id(alice):
    run_id = start_run(alice, thread_with_question(alice))
    events = list(RunEvent.objects.filter(run_id=run_id).order_by("seq"))
    run = Run.objects.get(pk=run_id)
    assert [(e.seq, e.type) for e in events] == [(1, "run.started")]
    assert events[0].data == {"persona_id": run.persona_id, "route_id": run.route_id, "trace_id": run.trace_id}
    assert run.last_seq == 1


def test_without_a_body_the_default_persona_and_its_route_are_used(alice):
    run = Run.objects.get(pk=start_run(alice, thread_with_question(alice)))
    default = Persona.objects.filter(key="default", org=None).order_by("-version").first()
    assert run.persona_id == default.public_id
    assert run.route_id == "stub" and run.model


def test_a_bare_persona_key_resolves_to_its_newest_version(alice):
    run = Run.objects.get(pk=start_run(alice, thread_with_question(alice), {"persona_id": "careful"}))
    newest = Persona.objects.filter(key="careful", org=None).order_by("-version").first()
    assert run.persona_id == newest.public_id


@pytest.mark.parametrize("field,value", [("persona_id", "nobody@1"), ("persona_id", "default@999"),
                                         ("route_id", "no-such-route"), ("persona_id", 42)])
def test_unknown_persona_or_route_is_422_naming_the_field(alice, field, value):
    thread_id = thread_with_question(alice)
    response = alice.client.post(f"/v1/threads/{thread_id}/runs", {field: value})
    assert response.status_code == 422
    assert response.json()["code"] == "validation.error"
    assert list(response.json()["details"]["fields"]) == [field]
    assert not Run.objects.filter(thread_id=thread_id).exists()


def test_unknown_body_field_is_422(alice):
    response = alice.client.post(f"/v1/threads/{thread_with_question(alice)}/runs", {"model": "gpt"})
    assert response.status_code == 422
    assert response.json()["details"]["fields"] == {"model": ["unknown field"]}


def test_a_thread_with_an_active_run_is_busy_until_that_run_ends(alice):
    thread_id = thread_with_question(alice)
    first = start_run(alice, thread_id)
    response = alice.client.post(f"/v1/threads/{thread_id}/runs", {})
    assert response.status_code == 409
    assert response.json()["code"] == "runs.thread_busy"
    finish(first)
    assert start_run(alice, thread_id) != first
    assert Run.objects.filter(thread_id=thread_id).count() == 2


def test_the_org_cap_answers_429_with_retry_after(alice, settings):
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = 2
    running = [start_run(alice, thread_with_question(alice)) for _ in range(2)]
    thread_id = thread_with_question(alice)
    response = alice.client.post(f"/v1/threads/{thread_id}/runs", {})
    assert response.status_code == 429
    assert response.json()["code"] == "runs.limit_exceeded"
    assert int(response["Retry-After"]) > 0
    finish(running[0], "run.failed", error_class="internal.error", message="x")
    start_run(alice, thread_id)


def test_a_cap_of_zero_means_unlimited(alice, settings):
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = 0
    for _ in range(3):
        start_run(alice, thread_with_question(alice))
    assert Run.objects.filter(status=RunStatus.RUNNING).count() == 3


def test_another_orgs_active_runs_do_not_count_against_the_cap(alice, charlie, settings):
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = 1
    start_run(charlie, thread_with_question(charlie))
    start_run(alice, thread_with_question(alice))  # asserts 201: charlie's run did not count
    second = alice.client.post(f"/v1/threads/{thread_with_question(alice)}/runs", {})
    assert second.status_code == 429  # while alice's own run does


@pytest.mark.parametrize("thread_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_thread_is_404(alice, thread_id):
    response = alice.client.post(f"/v1/threads/{thread_id}/runs", {})
    assert response.status_code == 404
    assert response.json()["code"] == "threads.not_found"


def test_a_deleted_thread_takes_no_runs(alice):
    thread_id = thread_with_question(alice)
    alice.client.delete(f"/v1/threads/{thread_id}")
    assert alice.client.post(f"/v1/threads/{thread_id}/runs", {}).status_code == 404


def test_the_thread_shows_its_active_run(alice):
    thread_id = thread_with_question(alice)
    run_id = start_run(alice, thread_id)
    assert alice.client.get(f"/v1/threads/{thread_id}").json()["active_run_id"] == run_id


def test_the_database_itself_refuses_a_second_active_run_on_a_thread(alice):
    run = Run.objects.get(pk=start_run(alice, thread_with_question(alice)))
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(org=run.org, thread=run.thread, created_by=run.created_by, trace_id="0" * 32,
                           status=RunStatus.WAITING_FOR_INPUT)
