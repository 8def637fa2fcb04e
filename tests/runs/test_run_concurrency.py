"""Limits that hold under real concurrency: several threads, each with its own database connection.

Meant for PostgreSQL (row locks, the partial unique index); on SQLite the same stories pass
because IMMEDIATE transactions let one writer in at a time.
"""
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.db import connections
from rest_framework.test import APIClient

from runs.events import event_append
from runs.models import Run, RunEvent
from tests.conftest import make_actor
from tests.runs.stories import start_run, thread_with_question


def in_parallel(calls):
    """Run the callables at the same moment, each on its own thread and connection; their results."""
    barrier = Barrier(len(calls))

    def call(fn):
        try:
            barrier.wait()
            return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(call, calls))


def create_call(key, path, body=None):
    """A POST of `body` (JSON) as the key's holder, on a client of its own; its status code."""
    def create():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client.post(path, body or {}, format="json").status_code
    return create


@pytest.fixture
def alice_tx(transactional_db):
    return make_actor(org="acme", email="alice@acme.test", role="admin")


@pytest.mark.parametrize("cap", [10, 0])  # the org lock, or (no cap) only the unique index
def test_ten_parallel_creates_on_one_thread_admit_exactly_one(alice_tx, settings, cap):
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = cap
    thread_id = thread_with_question(alice_tx)
    statuses = in_parallel([create_call(alice_tx.key, f"/v1/threads/{thread_id}/runs")] * 10)
    assert sorted(statuses) == [201] + [409] * 9
    assert Run.objects.filter(thread_id=thread_id).count() == 1


def test_thirty_parallel_creates_with_a_cap_of_five_admit_exactly_five(alice_tx, settings):
    settings.ARKLOOP_MAX_CONCURRENT_RUNS_PER_ORG = 5
    threads = [thread_with_question(alice_tx) for _ in range(30)]
    statuses = in_parallel([create_call(alice_tx.key, f"/v1/threads/{t}/runs") for t in threads])
    assert sorted(statuses) == [201] * 5 + [429] * 25
    assert Run.objects.filter(org=alice_tx.org).count() == 5


def test_two_writers_appending_to_one_run_leave_a_gapless_log(alice_tx):
    run_id = start_run(alice_tx, thread_with_question(alice_tx))

    def writer(name):
        def write():
            for i in range(40):
                event_append(run_id=run_id, type="message.delta", data={"content": f"{name}{i}", "role": "assistant"})
        return write

    in_parallel([writer("a"), writer("b")])
    seqs = list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 82))
    assert Run.objects.get(pk=run_id).last_seq == 81
