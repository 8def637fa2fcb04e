"""The hub and the stream's inside, driven in-process through the real ASGI application."""
from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connection

from runs.models import Run
from runs.stream import hub
from runs.stream.hub import RESYNC, Subscription, get_hub
from runs.stream.selectors import last_seqs, stream_db
from runs.stream.sse import Frame
from tests.stream.asgi_client import AsgiStream
from tests.stream.conftest import append_deltas, finish, make_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _close_stream_db_workers():
    """The stream's DB workers keep connections open; close them so the test database can go."""
    yield
    stream_db.close()


def asgi_app():
    from arkloop.asgi import application

    return application


def stream_of(run: Run, actor, query: str = "") -> AsgiStream:
    return AsgiStream(asgi_app(), f"/v1/runs/{run.id}/events", query, actor.auth)


async def append_in_thread(run: Run, count: int, *, terminal: bool = True) -> None:
    def write() -> None:
        try:
            append_deltas(run, count)
            if terminal:
                finish(run)
        finally:
            connection.close()
    await asyncio.to_thread(write)


def ids_of(body: bytes) -> list[int]:
    return [int(line[4:]) for line in body.split(b"\n") if line.startswith(b"id: ")]


def test_disconnected_clients_leave_no_subscription_or_task_behind(alice):
    run = make_run(alice)

    async def scenario() -> None:
        streams = [await stream_of(run, alice).open() for _ in range(3)]
        for stream in streams:
            await stream.read_until(b"event: run.started")
        assert get_hub().stats().subscribers == 3
        for stream in streams:
            await stream.hang_up()
        stats = get_hub().stats()
        assert (stats.subscribers, stats.runs, stats.readers) == (0, 0, 0)

    asyncio.run(scenario())


def test_a_stream_that_ends_with_the_terminal_event_unsubscribes(alice):
    run = make_run(alice)

    async def scenario() -> None:
        stream = await stream_of(run, alice).open()
        await stream.read_until(b"event: run.started")
        await append_in_thread(run, 2)
        body = await stream.read_until(b"event: run.completed")
        await asyncio.wait_for(stream.task, 20)
        assert ids_of(body) == [1, 2, 3, 4]
        assert get_hub().stats().subscribers == 0

    asyncio.run(scenario())


@pytest.fixture
def stream_db_reads(monkeypatch) -> list[str]:
    """The names of the functions streams run on `stream_db`, in order (SQLite's poll left out)."""
    calls: list[str] = []
    real_read = stream_db.read

    async def counting_read(fn, /, *args, **kwargs):
        if fn is not last_seqs:  # SQLite's poll: one query per 50 ms for every stream of the process
            calls.append(fn.__name__)
        return await real_read(fn, *args, **kwargs)

    monkeypatch.setattr(stream_db, "read", counting_read)
    return calls


def test_a_stream_opens_with_one_trip_to_the_database_threads(alice, stream_db_reads):
    run = make_run(alice)

    async def scenario() -> None:
        for _ in range(2):  # the key's principal is looked up, then memoized: one trip either way
            stream_db_reads.clear()
            stream = await stream_of(run, alice).open()
            await stream.read_until(b"event: run.started")
            await stream.hang_up()
            assert stream_db_reads[:2] == ["check_opening", "events_after"]

    asyncio.run(scenario())


def test_an_idle_follower_is_pinged_without_touching_the_database(alice, settings, stream_db_reads):
    settings.ARKLOOP_SSE_HEARTBEAT_SECONDS = 0.05
    run = make_run(alice)
    calls = stream_db_reads

    async def read_pings(stream: AsgiStream, count: int) -> None:
        while stream.body.count(b": ping\n\n") < count:
            await stream.read_chunk()

    async def scenario() -> tuple[int, int]:
        stream = await stream_of(run, alice).open()
        await stream.read_until(b"event: run.started")
        await read_pings(stream, 3)  # by now the replay (and the first LISTEN's resync) are done
        settled = len(calls)
        await read_pings(stream, 10)
        await stream.hang_up()
        return settled, len(calls)

    settled, final = asyncio.run(scenario())
    assert "events_after" in calls and final == settled  # the replay read the log; no query per heartbeat


def test_a_follower_whose_queue_overflows_catches_up_from_the_log(alice, monkeypatch):
    monkeypatch.setattr(hub, "QUEUE_SIZE", 2)
    run = make_run(alice)

    async def scenario() -> bytes:
        stream = await stream_of(run, alice).open()
        await stream.read_until(b"event: run.started")
        await append_in_thread(run, 60)
        body = await stream.read_until(b"event: run.completed")
        await asyncio.wait_for(stream.task, 20)
        return body

    assert ids_of(asyncio.run(scenario())) == list(range(1, 63))


def test_an_overflowing_queue_is_replaced_by_one_resync(monkeypatch):
    monkeypatch.setattr(hub, "QUEUE_SIZE", 3)
    subscription = Subscription(run_id="r")
    for seq in range(1, 5):
        subscription.deliver(Frame(seq=seq, terminal=False, body=b""))
    assert subscription.queue.qsize() == 1 and subscription.queue.get_nowait() is RESYNC


def test_the_hub_frames_each_event_once_for_every_live_follower():
    """The HTTP/1.1 chunk is framed by the hub, one per event, and the same bytes go to every live
    follower; a follower that is not live gets the frame in its queue, and a RESYNC is never written."""
    written: list[tuple[Frame, bytes]] = []

    def live(frame: Frame, chunk: bytes) -> bool:
        written.append((frame, chunk))
        return True

    channel = hub._RunChannel()
    followers = [Subscription(run_id="r") for _ in range(3)]
    followers[0].live = followers[1].live = live
    channel.subscribers.update(followers)
    frame = Frame(seq=2, terminal=False, body=b"id: 2\nevent: message.delta\ndata: {}\n\n")
    hub.Hub._deliver(channel, frame)
    (first, chunk), (second, again) = written
    assert first is second is frame and chunk is again
    assert chunk == b"25\r\n" + frame.body + b"\r\n"  # 0x25 = 37 bytes, as Twisted's toChunk frames them
    assert followers[2].queue.get_nowait() is frame
    hub.Hub._deliver(channel, RESYNC)
    assert len(written) == 2 and all(follower.queue.get_nowait() is RESYNC for follower in followers)


def test_resync_reaches_every_subscriber():
    async def scenario() -> None:
        the_hub = hub.Hub()
        first, second = the_hub.subscribe("a"), the_hub.subscribe("b")
        the_hub.resync_all()
        assert first.queue.get_nowait() is RESYNC and second.queue.get_nowait() is RESYNC
        for subscription in (first, second):
            the_hub.unsubscribe(subscription)
        assert the_hub.stats().subscribers == 0

    asyncio.run(scenario())


def test_concurrent_threads_do_not_share_the_hub():
    hubs = []

    def in_own_loop() -> None:
        async def grab() -> None:
            hubs.append(get_hub())
        asyncio.run(grab())

    threads = [threading.Thread(target=in_own_loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hubs[0] is not hubs[1]


def test_the_lean_stream_path_answers_with_the_headers_and_body_of_djangos_handler(alice):
    """runs.stream.asgi serves successful streams itself; what a client sees must not change."""
    from arkloop.asgi import django_asgi_app

    run = make_run(alice, events=2, finish="run.completed")

    async def headers_and_body(app) -> tuple[dict[bytes, bytes], bytes]:
        stream = AsgiStream(app, f"/v1/runs/{run.id}/events", "", alice.auth)
        stream.task = asyncio.create_task(app(stream.scope, stream._receive, stream.sent.put))
        start = await asyncio.wait_for(stream.sent.get(), 20)
        while await stream.read_chunk():
            pass
        await asyncio.wait_for(stream.task, 20)
        return dict(start["headers"]), stream.body

    async def scenario() -> None:
        lean_headers, lean_body = await headers_and_body(asgi_app())
        django_headers, django_body = await headers_and_body(django_asgi_app)
        assert lean_headers.pop(b"X-Trace-Id") != django_headers.pop(b"X-Trace-Id")
        assert lean_headers == django_headers
        assert lean_body == django_body and ids_of(lean_body) == [1, 2, 3, 4]

    asyncio.run(scenario())
