"""The stream's edges over real HTTP to Daphne (SPEC §4 "SSE"): cursors too long or past the end,
and the cap of open streams per API key or access token."""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import httpx
import pytest

from arkloop.authentication import access_token_issue
from arkloop.services import api_key_create
from runs.stream.limits import stream_slots
from runs.stream.selectors import stream_db
from tests.rawhttp import connect, head, read_response
from tests.runner.processes import wait_until
from tests.stream.asgi_client import AsgiStream
from tests.stream.conftest import append_deltas, finish, make_run
from tests.stream.sse_client import TIMEOUT, Frame, events_url, iter_sse, read_all

CAP = 100  # ARKLOOP_MAX_STREAMS_PER_PRINCIPAL's default, which the test server runs with
HANG_GUARD = 20.0


def assert_422_naming(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert list(response.json()["details"]["fields"]) == [field]


# -- cursors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("digits", [19, 4300, 5000])
def test_a_cursor_of_more_than_18_digits_is_422_even_for_a_run_that_does_not_exist(live_server, alice, digits):
    url = events_url(live_server.url, uuid.uuid4())
    assert_422_naming(httpx.get(f"{url}?after_seq={'9' * digits}", headers=alice.auth, timeout=TIMEOUT),
                      "after_seq")
    assert_422_naming(httpx.get(url, headers={**alice.auth, "Last-Event-ID": "1" * digits}, timeout=TIMEOUT),
                      "Last-Event-ID")


def test_a_cursor_of_18_digits_is_accepted(live_server, alice):
    assert httpx.get(f"{events_url(live_server.url, uuid.uuid4())}?after_seq={'9' * 18}", headers=alice.auth,
                     timeout=TIMEOUT).status_code == 404


@pytest.mark.parametrize("cursor", ["3", "4", "1000000", "9" * 18])
def test_a_cursor_at_or_past_the_end_of_a_finished_run_closes_at_once(live_server, alice, cursor):
    run = make_run(alice, events=1, finish="run.completed")  # seq 1..3
    response, frames = read_all(events_url(live_server.url, run.id, after_seq=cursor), alice.auth)
    assert response.status_code == 200 and frames == []


def frames_of(response: httpx.Response) -> list[Frame]:
    """The frames until the server ends the stream; pings keep a stream that never ends alive, so
    a hang guard fails it instead (it asserts no speed)."""
    frames, deadline = [], time.monotonic() + HANG_GUARD
    for item in iter_sse(response):
        assert time.monotonic() < deadline, "the stream did not end"
        if isinstance(item, Frame):
            frames.append(item)
    return frames


def test_a_cursor_at_the_end_of_an_active_run_waits_for_the_next_event(live_server, alice):
    run = make_run(alice, events=1)  # seq 1..2
    with httpx.stream("GET", events_url(live_server.url, run.id, after_seq=2), headers=alice.auth,
                      timeout=TIMEOUT) as response:
        assert response.status_code == 200
        append_deltas(run, 1)
        finish(run)
        frames = frames_of(response)  # the server closes after the terminal event
    assert [frame.seq for frame in frames] == [3, 4]


def test_a_cursor_past_the_end_of_an_active_run_waits_and_closes_when_the_run_ends(live_server, alice):
    run = make_run(alice, events=1)
    with httpx.stream("GET", events_url(live_server.url, run.id, after_seq=1000000), headers=alice.auth,
                      timeout=TIMEOUT) as response:
        assert response.status_code == 200
        append_deltas(run, 2)
        finish(run)
        assert frames_of(response) == []  # and the stream ended: no event is past the cursor


# -- the cap of open streams -----------------------------------------------------------------------

@contextlib.contextmanager
def open_streams(url: str, path: str, token: str, count: int):
    """`count` streams opened on raw sockets, each past its response head (200 expected)."""
    sockets = []
    try:
        for _ in range(count):
            sock = connect(url)
            sockets.append(sock)
            sock.sendall(head("GET", path, {"Authorization": f"Bearer {token}"}))
        for sock in sockets:
            assert sock.recv(12) == b"HTTP/1.1 200"
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def get_stream(url: str, path: str, token: str) -> int:
    with connect(url) as sock:
        sock.sendall(head("GET", path + "?follow=false", {"Authorization": f"Bearer {token}"}))
        response = read_response(sock)
        if response.status == 429:
            assert response.json()["code"] == "streams.limit_exceeded" and int(response.headers["retry-after"]) > 0
        return response.status


def test_one_stream_past_the_cap_per_key_is_429_and_a_closed_stream_frees_its_place(live_server, alice):
    run = make_run(alice)
    path = f"/v1/runs/{run.id}/events"
    _, other_key = api_key_create(membership=alice.membership, name="second key")
    token = access_token_issue(membership=alice.membership)
    with open_streams(live_server.url, path, alice.key, CAP) as sockets:
        assert get_stream(live_server.url, path, alice.key) == 429
        # the cap is per API key or access token, not per user
        assert get_stream(live_server.url, path, other_key) == 200
        assert get_stream(live_server.url, path, token) == 200
        sockets.pop().close()
        wait_until(lambda: get_stream(live_server.url, path, alice.key) == 200, what="a freed stream slot")


@pytest.mark.django_db(transaction=True)
def test_streams_served_by_either_path_are_counted_and_given_back(alice, settings):
    """The lean ASGI path and Django's handler (which serves a stream when the lean path declines)
    hold a slot while the stream is open and give it back when the client hangs up."""
    from arkloop.asgi import application, django_asgi_app

    settings.ARKLOOP_MAX_STREAMS_PER_PRINCIPAL = 2
    run = make_run(alice)
    credential = f"key:{alice.membership.api_keys.get().pk}"

    async def scenario() -> None:
        lean = await AsgiStream(application, f"/v1/runs/{run.id}/events", "", alice.auth).open()
        django = await AsgiStream(django_asgi_app, f"/v1/runs/{run.id}/events", "", alice.auth).open()
        assert (lean.status, django.status) == (200, 200)
        assert stream_slots.open_streams(credential) == 2
        refused = await AsgiStream(django_asgi_app, f"/v1/runs/{run.id}/events", "", alice.auth).open()
        assert refused.status == 429
        await lean.hang_up()
        await django.hang_up()

    try:
        asyncio.run(scenario())
        wait_until(lambda: stream_slots.open_streams(credential) == 0, what="slots given back")
    finally:
        stream_db.close()
