"""POST /v1/runs/{id}:cancel (and /cancel) and POST /v1/runs/{id}/input (SPEC §4)."""
import pytest

from runs.models import Run, RunStatus
from tests.runs.stories import event_types, finish, hold, park_for_input, start_run, thread_with_question


def cancel(actor, run_id, form=":cancel", body=None):
    return actor.client.post(f"/v1/runs/{run_id}{form}", body)


def test_a_run_no_runner_holds_is_cancelled_at_once(alice):
    run_id = start_run(alice, thread_with_question(alice))
    response = cancel(alice, run_id)
    assert (response.status_code, response.json()) == (200, {"ok": True})
    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.CANCELLED and run.cancelled_at is not None
    assert event_types(run_id) == ["run.started", "run.cancelled"]
    assert alice.client.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled"


def test_the_slash_alias_cancels_too_and_a_reason_is_recorded(alice):
    run_id = start_run(alice, thread_with_question(alice))
    assert cancel(alice, run_id, "/cancel", {"reason": "changed my mind"}).json() == {"ok": True}
    last = Run.objects.get(pk=run_id).events.order_by("-seq").first()
    assert (last.type, last.data["reason"]) == ("run.cancelled", "changed my mind")


def test_a_run_a_runner_holds_becomes_cancelling_and_the_runner_is_asked(alice):
    run_id = start_run(alice, thread_with_question(alice))
    hold(run_id)
    assert cancel(alice, run_id).status_code == 200
    assert Run.objects.get(pk=run_id).status == RunStatus.CANCELLING
    assert event_types(run_id) == ["run.started", "run.cancel_requested"]


def test_cancelling_twice_asks_once(alice):
    run_id = start_run(alice, thread_with_question(alice))
    hold(run_id)
    cancel(alice, run_id)
    assert cancel(alice, run_id, "/cancel").json() == {"ok": True}
    assert event_types(run_id) == ["run.started", "run.cancel_requested"]


def test_a_run_whose_lease_expired_is_cancelled_at_once(alice):
    run_id = start_run(alice, thread_with_question(alice))
    hold(run_id, seconds=-1)
    cancel(alice, run_id)
    assert Run.objects.get(pk=run_id).status == RunStatus.CANCELLED


def test_a_run_waiting_for_input_is_cancelled_at_once(alice):
    run_id = start_run(alice, thread_with_question(alice))
    park_for_input(run_id)
    cancel(alice, run_id)
    assert event_types(run_id)[-1] == "run.cancelled"
    assert Run.objects.get(pk=run_id).status == RunStatus.CANCELLED


@pytest.mark.parametrize("outcome", ["run.completed", "run.failed", "run.cancelled"])
def test_cancel_of_a_finished_run_is_a_noop(alice, outcome):
    run_id = start_run(alice, thread_with_question(alice))
    finish(run_id, outcome)
    before = Run.objects.get(pk=run_id)
    assert cancel(alice, run_id).json() == {"ok": True}
    after = Run.objects.get(pk=run_id)
    assert (after.status, after.last_seq, after.cancelled_at) == (before.status, 2, before.cancelled_at)


def test_cancel_rejects_unknown_fields(alice):
    run_id = start_run(alice, thread_with_question(alice))
    assert cancel(alice, run_id, body={"force": True}).status_code == 422
    assert Run.objects.get(pk=run_id).status == RunStatus.RUNNING


def test_cancel_answers_405_to_get(alice):
    run_id = start_run(alice, thread_with_question(alice))
    assert alice.client.get(f"/v1/runs/{run_id}:cancel").json()["code"] == "http.method_not_allowed"


def test_input_answers_a_waiting_run_and_it_runs_again(alice):
    run_id = start_run(alice, thread_with_question(alice))
    park_for_input(run_id)
    response = alice.client.post(f"/v1/runs/{run_id}/input", {"content": "blue"})
    assert (response.status_code, response.json()) == (200, {"ok": True})
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.waiting_since) == (RunStatus.RUNNING, None)
    last = run.events.order_by("-seq").first()
    assert (last.type, last.data["content"]) == ("run.input_provided", "blue")


@pytest.mark.parametrize("state", ["running", "cancelling", "completed"])
def test_input_to_a_run_that_is_not_waiting_is_409(alice, state):
    run_id = start_run(alice, thread_with_question(alice))
    if state == "cancelling":
        hold(run_id)
        cancel(alice, run_id)
    if state == "completed":
        finish(run_id)
    seqs = Run.objects.get(pk=run_id).last_seq
    response = alice.client.post(f"/v1/runs/{run_id}/input", {"content": "blue"})
    assert (response.status_code, response.json()["code"]) == (409, "runs.not_waiting_for_input")
    assert Run.objects.get(pk=run_id).last_seq == seqs


@pytest.mark.parametrize("body", [{}, {"content": ""}, {"content": " \n "}, {"content": "é" * 16385},
                                  {"content": 7}, {"content": "x", "extra": 1}])
def test_input_content_is_1_to_32768_utf8_bytes_not_blank(alice, body):
    run_id = start_run(alice, thread_with_question(alice))
    park_for_input(run_id)
    response = alice.client.post(f"/v1/runs/{run_id}/input", body)
    assert response.status_code == 422
    assert Run.objects.get(pk=run_id).status == RunStatus.WAITING_FOR_INPUT


def test_input_of_exactly_32768_bytes_is_accepted(alice):
    run_id = start_run(alice, thread_with_question(alice))
    park_for_input(run_id)
    assert alice.client.post(f"/v1/runs/{run_id}/input", {"content": "é" * 16384}).status_code == 200
