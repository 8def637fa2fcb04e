"""Server-side behaviour of the stream over real HTTP: heartbeats, and surviving a lost LISTEN."""
from __future__ import annotations

import httpx
import pytest
from django.db import connection

from tests.servers import DaphneServer
from tests.stream.conftest import append_deltas, finish, make_run
from tests.stream.sse_client import TIMEOUT, Frame, events_url, iter_sse


@pytest.fixture(scope="module")
def fast_heartbeat_server(database_url):
    with DaphneServer(database_url=database_url, ARKLOOP_SSE_HEARTBEAT_SECONDS="1") as server:
        yield server


def test_an_idle_follower_gets_a_ping_comment_each_heartbeat(fast_heartbeat_server, transactional_db, alice):
    run = make_run(alice)
    items: list = []
    with httpx.stream("GET", events_url(fast_heartbeat_server.url, run.id, after_seq=1), headers=alice.auth,
                      timeout=TIMEOUT) as response:
        for item in iter_sse(response):
            items.append(item)
            if item == "ping" and items.count("ping") == 2:
                finish(run)
    assert items[:2] == ["ping", "ping"]
    assert isinstance(items[-1], Frame) and items[-1].event == "run.completed"


def hub_listen_pids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'arkloop-stream-hub'")
        return [row[0] for row in cursor.fetchall()]


def kill_hub_listen_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE application_name = 'arkloop-stream-hub'")
        return cursor.fetchone()[0]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_killing_the_listen_connection_mid_stream_loses_no_event(live_server, transactional_db, alice):
    run = make_run(alice)
    killed: list[int] = []

    def kill_then_append() -> None:
        killed.append(kill_hub_listen_connections())
        append_deltas(run, 10)  # committed while the hub is reconnecting
        finish(run)

    frames = []
    with httpx.stream("GET", events_url(live_server.url, run.id), headers=alice.auth, timeout=TIMEOUT) as response:
        for item in iter_sse(response):
            if isinstance(item, Frame):
                frames.append(item.seq)
                if item.seq == 1:
                    kill_then_append()
    assert killed[0] >= 1
    assert frames == list(range(1, 13))
    # The hub is listening again: a new live follower hears new events without any resync.
    second = make_run(alice)
    with httpx.stream("GET", events_url(live_server.url, second.id), headers=alice.auth,
                      timeout=TIMEOUT) as response:
        seen = []
        for item in iter_sse(response):
            if isinstance(item, Frame):
                seen.append(item.seq)
                if item.seq == 1:
                    append_deltas(second, 1)
                    finish(second)
    assert seen == [1, 2, 3]
    assert hub_listen_pids()
