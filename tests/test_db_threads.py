"""arkloop.db_threads: the database threads the runner, the webhook sender and the stream share."""
from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import OperationalError, connection

from arkloop.db_threads import DbThreads
from runs.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def db():
    threads = DbThreads(2, name="test")
    yield threads
    threads.close()


def breaks_once():
    """A query function whose first call fails as a dropped connection does."""
    calls = []

    def query() -> int:
        calls.append(id(connection.connection))
        if len(calls) == 1:
            connection.ensure_connection()
            raise OperationalError("server closed the connection unexpectedly")
        return Run.objects.count()

    return query, calls


def test_a_read_is_retried_once_on_a_new_connection_and_a_call_is_not(db):
    read, read_calls = breaks_once()
    assert asyncio.run(db.read(read)) == 0
    assert len(read_calls) == 2

    call, call_calls = breaks_once()
    with pytest.raises(OperationalError):
        asyncio.run(db.call(call))
    assert len(call_calls) == 1
    assert asyncio.run(db.call(call)) == 0  # the broken connection was dropped: the next call works


def test_queries_run_on_the_named_threads_which_keep_their_connection(db):
    def where() -> tuple[str, int]:
        connection.ensure_connection()
        return threading.current_thread().name, id(connection.connection)

    async def many():
        return await asyncio.gather(*(db.call(where) for _ in range(20)))

    seen = asyncio.run(many())
    assert {name for name, _ in seen} <= {"arkloop-test-0", "arkloop-test-1"}
    assert len({conn for _, conn in seen}) <= 2  # at most one connection per thread, reused


def test_a_job_cancelled_before_a_thread_takes_it_never_runs(db):
    gate, ran = threading.Event(), []

    async def scenario() -> None:
        blockers = [asyncio.ensure_future(db.call(gate.wait)) for _ in range(2)]  # both threads busy
        queued = asyncio.ensure_future(db.call(ran.append, "queued"))
        await asyncio.sleep(0.05)
        queued.cancel()
        gate.set()
        await asyncio.gather(*blockers)
        await db.call(lambda: None)  # after the cancelled job in the queue

    asyncio.run(scenario())
    assert ran == []


def test_close_lets_queued_jobs_finish_and_the_next_call_starts_again(db):
    asyncio.run(db.call(Run.objects.count))
    db.close()
    assert not any(t.name.startswith("arkloop-test-") for t in threading.enumerate())
    assert asyncio.run(db.call(Run.objects.count)) == 0
