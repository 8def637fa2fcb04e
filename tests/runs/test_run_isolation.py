"""Tenancy over every run endpoint: another org gets 404 and nothing changes; members stay in their lane."""
import pytest

from runs.models import Run, RunStatus
from tests.runs.stories import assistant_answer, finish, park_for_input, start_run, thread_with_question
from threads.models import Message

RUN_ENDPOINTS = [
    ("get", "/v1/runs/{run}", None),
    ("post", "/v1/runs/{run}:cancel", None),
    ("post", "/v1/runs/{run}/cancel", None),
    ("post", "/v1/runs/{run}/input", {"content": "pwned"}),
]
THREAD_ENDPOINTS = [
    ("get", "/v1/threads/{thread}/runs", None),
    ("post", "/v1/threads/{thread}/runs", {}),
    ("post", "/v1/threads/{thread}:retry", None),
    ("post", "/v1/threads/{thread}/retry", None),
]


def snapshot(thread_id):
    runs = list(Run.objects.filter(thread_id=thread_id).order_by("pk").values_list("pk", "status", "last_seq"))
    hidden = Message.objects.filter(thread_id=thread_id, hidden_at__isnull=False).count()
    return runs, hidden


def a_waiting_run_with_an_answer_behind_it(owner):
    """A thread whose finished run answered, and a second run now waiting for input."""
    thread_id = thread_with_question(owner)
    first = start_run(owner, thread_id)
    assistant_answer(thread_id, first)
    finish(first)
    run_id = start_run(owner, thread_id)
    park_for_input(run_id)
    return thread_id, run_id


@pytest.mark.parametrize("method,path,body", RUN_ENDPOINTS + THREAD_ENDPOINTS)
def test_charlie_gets_404_on_every_run_endpoint_and_nothing_changes(alice, charlie, method, path, body):
    thread_id, run_id = a_waiting_run_with_an_answer_behind_it(alice)
    finish(run_id, "run.cancelled")  # so that create and retry would succeed for a rightful caller
    before = snapshot(thread_id)
    response = getattr(charlie.client, method)(path.format(run=run_id, thread=thread_id), body)
    assert response.status_code == 404
    assert response.json()["code"] == ("runs.not_found" if "{run}" in path else "threads.not_found")
    assert snapshot(thread_id) == before


def test_charlie_gets_404_on_input_to_a_waiting_run(alice, charlie):
    thread_id, run_id = a_waiting_run_with_an_answer_behind_it(alice)
    before = snapshot(thread_id)
    assert charlie.client.post(f"/v1/runs/{run_id}/input", {"content": "x"}).status_code == 404
    assert charlie.client.post(f"/v1/runs/{run_id}:cancel").status_code == 404
    assert snapshot(thread_id) == before
    assert Run.objects.get(pk=run_id).status == RunStatus.WAITING_FOR_INPUT


def test_charlie_lists_none_of_alices_runs_even_when_naming_them(alice, charlie):
    thread_id, run_id = a_waiting_run_with_an_answer_behind_it(alice)
    assert charlie.client.get("/v1/runs").json() == []
    assert charlie.client.get(f"/v1/runs?thread_id={thread_id}").json() == []
    assert charlie.client.get(f"/v1/runs?before={run_id}").status_code == 422


@pytest.mark.parametrize("method,path,body", RUN_ENDPOINTS)
def test_a_member_gets_404_on_a_colleagues_run(alice, bob, method, path, body):
    thread_id, run_id = a_waiting_run_with_an_answer_behind_it(alice)
    before = snapshot(thread_id)
    assert getattr(bob.client, method)(path.format(run=run_id), body).status_code == 404
    assert snapshot(thread_id) == before


def test_an_admin_acts_on_a_members_run(alice, bob):
    thread_id, run_id = a_waiting_run_with_an_answer_behind_it(bob)
    assert alice.client.post(f"/v1/runs/{run_id}/input", {"content": "ok"}).status_code == 200
    assert alice.client.post(f"/v1/runs/{run_id}:cancel").status_code == 200
    assert Run.objects.get(pk=run_id).status == RunStatus.CANCELLED
    assert alice.client.post(f"/v1/threads/{thread_id}:retry").status_code == 201
