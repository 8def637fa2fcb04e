"""The hot create paths (`POST …/messages`, `POST …/runs`): one statement each on PostgreSQL, the
ORM elsewhere (runs.services.run_start, threads.services.message_post). Same answers either way:
visibility, which error comes first, what is written."""
import pytest

from runs.models import Run, RunEvent
from tests.runs.stories import start_run, thread_with_question
from threads.models import Message, Thread

MISSING = "00000000-0000-0000-0000-000000000000"
INVALID_RUN_BODIES = [{"persona_id": "no-such-persona"}, {"route_id": "no-such-route"},
                      {"limits": {"max_turns": 10_000}}, {"unknown": 1}, {"persona_id": 7}]


def test_a_member_cannot_post_to_a_colleagues_thread_and_an_admin_can(alice, bob):
    thread_id = thread_with_question(alice)
    assert bob.client.post(f"/v1/threads/{thread_id}/messages", {"content": "x"}).status_code == 404
    assert bob.client.post(f"/v1/threads/{thread_id}/runs", {}).status_code == 404
    assert Message.objects.filter(thread_id=thread_id).count() == 1 and not Run.objects.exists()
    bobs = thread_with_question(bob)
    assert alice.client.post(f"/v1/threads/{bobs}/messages", {"content": "admin"}).status_code == 201
    run_id = start_run(alice, bobs)
    assert str(Run.objects.get(pk=run_id).created_by_id) == str(alice.user.pk)


@pytest.mark.parametrize("body", [{"content": ""}, {"content": 7}, {}, {"content": "x", "extra": 1}])
def test_a_thread_not_found_is_answered_before_an_invalid_message(alice, charlie, body):
    thread_id = thread_with_question(alice)
    for path in (f"/v1/threads/{thread_id}/messages", f"/v1/threads/{MISSING}/messages"):
        response = charlie.client.post(path, body, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "threads.not_found")
    assert alice.client.post(f"/v1/threads/{thread_id}/messages", body, format="json").status_code == 422


@pytest.mark.parametrize("body", INVALID_RUN_BODIES)
def test_a_thread_not_found_is_answered_before_an_invalid_run(alice, charlie, body):
    thread_id = thread_with_question(alice)
    for path in (f"/v1/threads/{thread_id}/runs", f"/v1/threads/{MISSING}/runs", "/v1/threads/nope/runs"):
        response = charlie.client.post(path, body, format="json")
        assert (response.status_code, response.json()["code"]) == (404, "threads.not_found")
    assert alice.client.post(f"/v1/threads/{thread_id}/runs", body, format="json").status_code == 422
    assert not Run.objects.exists()


def test_a_message_is_stored_as_sent_and_touches_its_thread(alice):
    thread_id = alice.client.post("/v1/threads", {"title": "t"}).json()["id"]
    before = Thread.objects.get(pk=thread_id).updated_at
    content = "  two  spaces, ünïcode, \u2028 and a tab\t "
    answer = alice.client.post(f"/v1/threads/{thread_id}/messages", {"content": content}).json()
    stored = Message.objects.get(pk=answer["id"])
    assert (stored.content, stored.role, stored.run_id, stored.hidden_at) == (content, "user", None, None)
    assert answer == {"id": str(stored.pk), "thread_id": thread_id, "role": "user", "content": content,
                      "run_id": None, "created_at": stored.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    assert Thread.objects.get(pk=thread_id).updated_at > before


@pytest.mark.parametrize("cap", [0, 3])
def test_a_run_is_stored_with_its_started_event(alice, settings, cap):
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = cap
    thread_id = thread_with_question(alice)
    answer = alice.client.post(f"/v1/threads/{thread_id}/runs", {"persona_id": "careful",
                                                                 "limits": {"max_turns": 2}}, format="json")
    run = Run.objects.get(pk=answer.json()["run_id"])
    assert answer.json()["trace_id"] == run.trace_id == answer["X-Trace-Id"]
    assert (run.status, run.last_seq, run.attempt, run.persona_id.split("@")[0]) == ("running", 1, 0, "careful")
    assert run.limits["max_turns"] == 2 and run.model and run.route_id
    started = RunEvent.objects.get(run=run)
    assert (started.seq, started.type) == (1, "run.started")
    assert started.data == {"persona_id": run.persona_id, "route_id": run.route_id, "trace_id": run.trace_id}
