"""PostgreSQL: every statement that appends events NOTIFYs each of them once, with the payload the
listeners parse (`<run_id>:<seq>` on arkloop_events, `<run_id>:<type>` on arkloop_work for work),
and only after it commits. Heard on a LISTEN connection of its own, as the hub and runners hear them.
"""
from __future__ import annotations

import psycopg
import pytest
from django.db import connection, transaction

from runs import notify
from runs.events import event_append, events_append
from runs.runner.leases import runs_claim
from tests.conftest import make_actor
from tests.runs.stories import start_run, thread_with_question


@pytest.fixture
def heard(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's (SQLite uses the in-process hooks, tested in test_events_append)")
    with psycopg.connect(notify.listen_conninfo(application_name="arkloop-test-notify"), autocommit=True) as listener:
        for channel in (notify.EVENTS_CHANNEL, notify.WORK_CHANNEL):
            listener.execute(f"LISTEN {channel}")

        def drain() -> list[tuple[str, str]]:
            return [(n.channel, n.payload) for n in listener.notifies(timeout=0.5)]

        yield drain


def test_creating_a_run_announces_run_started_to_both_channels(heard):
    alice = make_actor(org="acme", email="alice@acme.test", role="admin")
    thread_id = thread_with_question(alice)
    heard()
    run_id = start_run(alice, thread_id)
    assert heard() == [(notify.EVENTS_CHANNEL, f"{run_id}:1"), (notify.WORK_CHANNEL, f"{run_id}:run.started")]


def test_a_claim_announces_the_route_it_selected_once(heard):
    alice = make_actor(org="acme", email="alice@acme.test", role="admin")
    run_id = start_run(alice, thread_with_question(alice))
    heard()
    assert [claim.run_id for claim in runs_claim(owner="runner-a", limit=4, lease_seconds=30)] == [run_id]
    assert heard() == [(notify.EVENTS_CHANNEL, f"{run_id}:2")]


def test_appends_are_heard_after_commit_and_work_types_on_both_channels(heard):
    alice = make_actor(org="acme", email="alice@acme.test", role="admin")
    run_id = start_run(alice, thread_with_question(alice))
    heard()
    with transaction.atomic():
        events_append(run_id=run_id, events=[("message.delta", {"content": "a"}), ("message.delta", {"content": "b"})])
        event_append(run_id=run_id, type="run.cancel_requested", data={})
        assert heard() == []  # nothing before the commit
    assert heard() == [(notify.EVENTS_CHANNEL, f"{run_id}:2"), (notify.EVENTS_CHANNEL, f"{run_id}:3"),
                       (notify.EVENTS_CHANNEL, f"{run_id}:4"), (notify.WORK_CHANNEL, f"{run_id}:run.cancel_requested")]


def test_a_rolled_back_append_is_never_heard(heard):
    alice = make_actor(org="acme", email="alice@acme.test", role="admin")
    run_id = start_run(alice, thread_with_question(alice))
    heard()
    with pytest.raises(RuntimeError), transaction.atomic():
        events_append(run_id=run_id, events=[("message.delta", {"content": "a"})])
        raise RuntimeError("rolled back")
    assert heard() == []
