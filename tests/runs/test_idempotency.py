"""Idempotency-Key on every POST (SPEC §1): one execution per principal and key, replayed for 24 h."""
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from arkloop.models import IdempotencyRecord
from runs.models import Run
from tests.runs.stories import finish, start_run, thread_with_question
from threads.models import Thread


def post(actor, path, body=None, key="key-1"):
    return actor.client.post(path, body, HTTP_IDEMPOTENCY_KEY=key)


def test_the_same_key_and_body_replays_the_first_response_and_creates_one_run(alice):
    thread_id = thread_with_question(alice)
    first = post(alice, f"/v1/threads/{thread_id}/runs", {"persona_id": "default"})
    again = post(alice, f"/v1/threads/{thread_id}/runs", {"persona_id": "default"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["X-Trace-Id"] == first["X-Trace-Id"] == first.json()["trace_id"]
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Run.objects.filter(thread_id=thread_id).count() == 1


def test_key_order_and_spacing_of_the_body_do_not_make_it_different(alice):
    thread_id = thread_with_question(alice)
    path = f"/v1/threads/{thread_id}/runs"
    one = alice.client.generic("POST", path, b'{"persona_id":"default","route_id":"stub"}',
                               content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    two = alice.client.generic("POST", path, b'{ "route_id": "stub", "persona_id": "default" }',
                               content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    assert two.json() == one.json() and two.status_code == 201


def test_the_same_key_with_a_different_body_is_409(alice):
    post(alice, "/v1/threads", {"title": "one"})
    response = post(alice, "/v1/threads", {"title": "two"})
    assert (response.status_code, response.json()["code"]) == (409, "idempotency.conflict")
    assert response.json()["trace_id"] == response["X-Trace-Id"]
    assert list(Thread.objects.values_list("title", flat=True)) == ["one"]


def test_the_same_key_on_another_endpoint_is_409(alice):
    thread_id = thread_with_question(alice)
    post(alice, f"/v1/threads/{thread_id}/runs")
    assert post(alice, f"/v1/threads/{thread_id}:retry").status_code == 409


def test_keys_belong_to_their_principal(alice, bob):
    assert post(alice, "/v1/threads", {"title": "a"}).status_code == 201
    assert post(bob, "/v1/threads", {"title": "a"}).status_code == 201
    assert Thread.objects.count() == 2


def test_every_post_is_covered_cancel_included(alice):
    run_id = start_run(alice, thread_with_question(alice))
    assert post(alice, f"/v1/runs/{run_id}:cancel").json() == {"ok": True}
    assert post(alice, f"/v1/runs/{run_id}:cancel").json() == {"ok": True}
    assert IdempotencyRecord.objects.filter(key="key-1", status_code=200).count() == 1


def test_a_validation_error_is_replayed_too(alice):
    first = post(alice, "/v1/threads", {"colour": "red"})
    again = post(alice, "/v1/threads", {"colour": "red"})
    assert (first.status_code, again.status_code) == (422, 422)
    assert again.content == first.content


def test_a_busy_thread_is_not_remembered_so_the_same_request_can_succeed_later(alice):
    thread_id = thread_with_question(alice)
    running = start_run(alice, thread_id)
    assert post(alice, f"/v1/threads/{thread_id}/runs").status_code == 409
    finish(running)
    assert post(alice, f"/v1/threads/{thread_id}/runs").status_code == 201


def test_a_duplicate_while_the_first_is_still_executing_is_409(alice):
    principal = f"m:{alice.membership.pk}"
    IdempotencyRecord.objects.create(principal=principal, key="key-1", method="POST", path="/v1/threads",
                                     body_hash="in-flight")
    response = post(alice, "/v1/threads", {"title": "x"})
    assert (response.status_code, response.json()["code"]) == (409, "idempotency.conflict")
    assert not Thread.objects.exists()


def test_after_24_hours_the_key_executes_again(alice):
    first = post(alice, "/v1/threads", {"title": "x"}).json()
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    assert post(alice, "/v1/threads", {"title": "x"}).json()["id"] != first["id"]
    assert Thread.objects.count() == 2


@pytest.mark.parametrize("key,status", [("k" * 255, 201), ("k" * 256, 422), ("", 422)])
def test_keys_are_1_to_255_characters(alice, key, status):
    response = post(alice, "/v1/threads", {}, key=key)
    assert response.status_code == status
    assert Thread.objects.count() == (1 if status == 201 else 0)


def test_an_unauthenticated_post_is_401_and_nothing_is_stored(anonymous, db):
    response = anonymous.post("/v1/threads", {}, HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 401
    assert not IdempotencyRecord.objects.exists()


def test_replay_over_real_http(transactional_db, live_server):
    from tests.conftest import make_actor

    alice = make_actor(org="acme", email="alice@acme.test", role="admin")
    thread_id = thread_with_question(alice)
    headers = {**alice.auth, "Idempotency-Key": "over-http"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=10) as client:
        first = client.post(f"/v1/threads/{thread_id}/runs", json={})
        again = client.post(f"/v1/threads/{thread_id}/runs", json={})
        other = client.post(f"/v1/threads/{thread_id}/runs", json={"route_id": "stub"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 409)
    assert again.json() == first.json() and again.headers["X-Trace-Id"] == first.headers["X-Trace-Id"]
    assert other.json()["code"] == "idempotency.conflict"
    assert Run.objects.filter(thread_id=thread_id).count() == 1
