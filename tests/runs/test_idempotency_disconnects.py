"""A client that hangs up mid-request never breaks its retry (SPEC §1 Idempotency-Key).

Over raw sockets to a real Daphne: a keyed POST, the socket closed 1, 5, 20 or 50 ms after the
request was sent, then the same request retried with the same key until it gets a final answer.
Whatever the moment of the cut, the request ran exactly once and its key record is settled.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest

from arkloop.models import IdempotencyRecord
from tests.rawhttp import connect, exchange, request
from tests.runner.processes import wait_until
from threads.models import Message

CUT_AFTER_MS = [1, 5, 20, 50]


def keyed_post(actor, path: str, body: dict, key: str) -> bytes:
    headers = {**actor.auth, "Content-Type": "application/json", "Idempotency-Key": key}
    return request("POST", path, headers, json.dumps(body).encode())


def send_and_hang_up(url: str, raw: bytes, after_ms: float) -> None:
    with connect(url) as sock:
        sock.sendall(raw)
        time.sleep(after_ms / 1000)


def retry_until_answered(url: str, raw: bytes) -> int:
    """Retry while the first attempt is still executing (409 "still being processed")."""
    answers: list[int] = []

    def answered() -> bool:
        answers.append(exchange(url, raw).status)
        return answers[-1] != 409

    wait_until(answered, what="an answer other than 409 to the retry")
    return answers[-1]


def cut_and_retry(live_server, actor, cut_after_ms: float, requests: int) -> None:
    thread_id = actor.client.post("/v1/threads", {"title": "cuts"}).json()["id"]
    contents = [f"cut after {cut_after_ms} ms #{n} {uuid.uuid4().hex[:8]}" for n in range(requests)]
    raws = [keyed_post(actor, f"/v1/threads/{thread_id}/messages", {"content": c}, uuid.uuid4().hex)
            for c in contents]
    for raw in raws:
        send_and_hang_up(live_server.url, raw, cut_after_ms)
    for raw in raws:
        assert retry_until_answered(live_server.url, raw) == 201
    created = list(Message.objects.filter(thread_id=thread_id).values_list("content", flat=True))
    assert sorted(created) == sorted(contents), "each request ran exactly once"
    assert not IdempotencyRecord.objects.filter(status_code__isnull=True).exists()


@pytest.mark.parametrize("cut_after_ms", CUT_AFTER_MS)
def test_a_disconnect_never_leaves_a_key_unsettled_or_runs_a_request_twice(live_server, alice, transactional_db,
                                                                           cut_after_ms):
    cut_and_retry(live_server, alice, cut_after_ms, requests=4)


@pytest.mark.soak
@pytest.mark.parametrize("cut_after_ms", CUT_AFTER_MS)
def test_a_hundred_disconnects_at_each_moment(live_server, alice, transactional_db, cut_after_ms):
    cut_and_retry(live_server, alice, cut_after_ms, requests=100)
