"""POST /v1/threads/{id}:retry (and /retry): hide the last answer, run the turn again (SPEC §4)."""
import pytest

from runs.models import Run
from tests.runs.stories import assistant_answer, finish, start_run, thread_with_question
from threads.models import Message


def retry(actor, thread_id, form=":retry", body=None):
    return actor.client.post(f"/v1/threads/{thread_id}{form}", body)


def visible(actor, thread_id):
    return [(m["role"], m["content"]) for m in actor.client.get(f"/v1/threads/{thread_id}/messages").json()]


@pytest.mark.parametrize("form", [":retry", "/retry"])
def test_retry_hides_the_last_answer_and_starts_a_run_that_retries_the_previous(alice, form):
    thread_id = thread_with_question(alice, "hello")
    first = start_run(alice, thread_id, {"persona_id": "careful"})
    assistant_answer(thread_id, first)
    finish(first)
    response = retry(alice, thread_id, form)
    assert response.status_code == 201
    assert set(response.json()) == {"run_id", "trace_id"}
    assert response.json()["trace_id"] == response["X-Trace-Id"]
    assert visible(alice, thread_id) == [("user", "hello")]
    new, old = Run.objects.get(pk=response.json()["run_id"]), Run.objects.get(pk=first)
    assert (str(new.retry_of_id), new.persona_id, new.route_id) == (first, old.persona_id, old.route_id)
    started = new.events.get(seq=1)
    assert (started.type, started.data["retry_of"]) == ("run.started", first)
    assert alice.client.get(f"/v1/runs/{new.pk}").json()["retry_of"] == first


def test_retry_hides_everything_the_answering_run_wrote(alice):
    thread_id = thread_with_question(alice)
    first = start_run(alice, thread_id)
    assistant_answer(thread_id, first, "part one")
    assistant_answer(thread_id, first, "part two")
    finish(first)
    assert retry(alice, thread_id).status_code == 201
    assert Message.objects.filter(run_id=first, hidden_at__isnull=False).count() == 2


def test_only_the_answer_to_the_last_question_is_hidden(alice):
    thread_id = thread_with_question(alice, "one")
    first = start_run(alice, thread_id)
    assistant_answer(thread_id, first, "answer one")
    finish(first)
    alice.client.post(f"/v1/threads/{thread_id}/messages", {"content": "two"})
    second = start_run(alice, thread_id)
    finish(second, "run.failed", error_class="provider.unavailable", message="down")
    response = retry(alice, thread_id)
    assert response.status_code == 201
    assert visible(alice, thread_id) == [("user", "one"), ("assistant", "answer one"), ("user", "two")]
    assert str(Run.objects.get(pk=response.json()["run_id"]).retry_of_id) == second


def test_the_body_overrides_the_persona(alice):
    thread_id = thread_with_question(alice)
    finish(start_run(alice, thread_id))
    run_id = retry(alice, thread_id, body={"persona_id": "careful"}).json()["run_id"]
    assert Run.objects.get(pk=run_id).persona_id.startswith("careful@")


def test_retry_validates_its_body(alice):
    thread_id = thread_with_question(alice)
    finish(start_run(alice, thread_id))
    assert retry(alice, thread_id, body={"persona_id": "ghost"}).status_code == 422
    assert retry(alice, thread_id, body={"temperature": 1}).status_code == 422
    assert Run.objects.filter(thread_id=thread_id).count() == 1


def test_a_thread_without_a_user_message_has_nothing_to_retry(alice):
    thread_id = alice.client.post("/v1/threads", {}).json()["id"]
    response = retry(alice, thread_id)
    assert (response.status_code, response.json()["code"]) == (422, "runs.nothing_to_retry")
    assert not Run.objects.filter(thread_id=thread_id).exists()


def test_retry_of_a_busy_thread_is_409_and_hides_nothing(alice):
    thread_id = thread_with_question(alice)
    first = start_run(alice, thread_id)
    assistant_answer(thread_id, first)
    response = retry(alice, thread_id)
    assert (response.status_code, response.json()["code"]) == (409, "runs.thread_busy")
    assert Message.objects.filter(thread_id=thread_id, hidden_at__isnull=False).count() == 0
    assert Run.objects.filter(thread_id=thread_id).count() == 1
