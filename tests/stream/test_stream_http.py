"""GET /v1/runs/{id}/events over real HTTP against a real Daphne (SPEC §4 "SSE")."""
from __future__ import annotations

import random
import re
import subprocess
import sys
import threading

import httpx
import pytest

from runs.models import Run, RunEvent
from tests.servers import ROOT, subprocess_env
from tests.stream.conftest import finish, make_run
from tests.stream.sse_client import TIMEOUT, Frame, events_url, iter_sse, read_all

RFC3339_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3,}Z$")


def seqs(frames: list[Frame]) -> list[int]:
    return [frame.seq for frame in frames]


def follow_until_end(url: str, headers: dict, *, on_first_frame=None) -> list[Frame]:
    """Follow a stream until the server closes it; `on_first_frame` runs once the first event arrived."""
    frames: list[Frame] = []
    with httpx.stream("GET", url, headers=headers, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        for item in iter_sse(response):
            if isinstance(item, Frame):
                frames.append(item)
                if len(frames) == 1 and on_first_frame:
                    on_first_frame()
    return frames


def test_replay_of_a_finished_run_sends_every_event_then_closes(live_server, alice):
    run = make_run(alice, events=3, finish="run.completed")
    response, frames = read_all(events_url(live_server.url, run.id), alice.auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-trace-id"])
    assert seqs(frames) == [1, 2, 3, 4, 5]
    assert [f.event for f in frames] == ["run.started"] + ["message.delta"] * 3 + ["run.completed"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_get_the_405_envelope_over_real_http(live_server, alice, method):
    """Not Django's CSRF page: the stream is authenticated by its header, like the rest of the API."""
    run = make_run(alice, events=1)
    response = httpx.request(method, events_url(live_server.url, run.id), headers=alice.auth, json={},
                             timeout=TIMEOUT)
    assert response.status_code == 405 and response.headers["allow"] == "GET"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == "http.method_not_allowed"
    assert RunEvent.objects.filter(run=run).count() == 2  # nothing changed


def test_each_frame_carries_the_event_as_one_line_of_json(live_server, alice):
    run = make_run(alice, finish="run.failed")
    _, frames = read_all(events_url(live_server.url, run.id), alice.auth)
    stored = RunEvent.objects.get(run=run, seq=1)
    first = frames[0]
    assert len(first.data_lines) == 1
    assert set(first.data) == {"seq", "type", "data", "created_at", "run_id"}
    assert first.data["seq"] == 1 and first.data["type"] == "run.started" and first.data["run_id"] == str(run.id)
    assert first.data["data"] == stored.data and first.data["data"]["trace_id"] == run.trace_id
    assert RFC3339_MS_Z.match(first.data["created_at"])
    assert frames[-1].event == "run.failed"


def test_after_seq_replays_only_later_events(live_server, alice):
    run = make_run(alice, events=4, finish="run.completed")
    _, frames = read_all(events_url(live_server.url, run.id, after_seq=3), alice.auth)
    assert seqs(frames) == [4, 5, 6]


def test_last_event_id_overrides_after_seq(live_server, alice):
    run = make_run(alice, events=4, finish="run.completed")
    headers = {**alice.auth, "Last-Event-ID": "5"}
    _, frames = read_all(events_url(live_server.url, run.id, after_seq=1), headers)
    assert seqs(frames) == [6]


def test_follow_false_replays_an_active_run_and_closes(live_server, alice):
    run = make_run(alice, events=2)
    _, frames = read_all(events_url(live_server.url, run.id, follow="false"), alice.auth)
    assert seqs(frames) == [1, 2, 3]


def test_replay_of_a_long_log_crosses_batches(live_server, alice):
    run = make_run(alice)
    seed_events(run, 1200)
    finish(run)
    _, frames = read_all(events_url(live_server.url, run.id, after_seq=1), alice.auth)
    assert seqs(frames) == list(range(2, 1203))


def seed_events(run: Run, count: int) -> None:
    """Seed a long log in one statement (test setup only; the product appends via event_append)."""
    run.refresh_from_db()
    first = run.last_seq + 1
    RunEvent.objects.bulk_create(RunEvent(run=run, seq=seq, type="message.delta",
                                          data={"content": "x", "role": "assistant", "trace_id": run.trace_id})
                                 for seq in range(first, first + count))
    Run.objects.filter(pk=run.pk).update(last_seq=first + count - 1)


def test_follower_receives_events_appended_while_it_watches(live_server, alice, appender):
    run = make_run(alice)
    gate = threading.Event()
    writer = appender(run, count=30, pause=0.005, start_gate=gate)
    frames = follow_until_end(events_url(live_server.url, run.id), alice.auth, on_first_frame=gate.set)
    writer.join_ok()
    assert seqs(frames) == list(range(1, 33))
    assert frames[-1].event == "run.completed"


def test_follower_receives_events_appended_by_another_process(live_server, alice, database_url):
    run = make_run(alice)
    url = events_url(live_server.url, run.id)
    writer: list[subprocess.Popen] = []

    def start_writer() -> None:
        writer.append(subprocess.Popen([sys.executable, "-m", "tests.stream.append_events", str(run.id), "20"],
                                       cwd=ROOT, env=subprocess_env(database_url)))
    try:
        frames = follow_until_end(url, alice.auth, on_first_frame=start_writer)
    finally:
        for process in writer:
            process.wait(30)
    assert writer[0].returncode == 0
    assert seqs(frames) == list(range(1, 23))


def test_events_committed_during_the_replay_are_sent_once(live_server, alice, appender):
    run = make_run(alice)
    seed_events(run, 600)
    writer = appender(run, count=200)  # writes while the client connects and replays
    frames = follow_until_end(events_url(live_server.url, run.id), alice.auth)
    writer.join_ok()
    assert seqs(frames) == list(range(1, 803))


@pytest.mark.parametrize("trial", range(3))
def test_reconnecting_with_last_event_id_at_random_points_loses_and_repeats_nothing(
        live_server, alice, appender, trial):
    rng = random.Random(trial)
    run = make_run(alice)
    writer = appender(run, count=150, pause=0.002)
    received: list[int] = []
    for _attempt in range(500):
        if received and received[-1] == 152:
            break
        headers = {**alice.auth, "Last-Event-ID": str(received[-1])} if received else alice.auth
        cut = rng.randint(1, 25)
        with httpx.stream("GET", events_url(live_server.url, run.id), headers=headers, timeout=TIMEOUT) as response:
            for item in iter_sse(response):
                if isinstance(item, Frame):
                    received.append(item.seq)
                    if len(received) % cut == 0:
                        break  # hang up mid-stream, like a dropped connection
    writer.join_ok()
    assert received == list(range(1, 153))


def test_stream_closes_right_after_a_terminal_event_while_following(live_server, alice):
    run = make_run(alice, events=1)
    frames = follow_until_end(events_url(live_server.url, run.id), alice.auth,
                              on_first_frame=lambda: finish(run, "run.cancelled"))
    assert [f.event for f in frames] == ["run.started", "message.delta", "run.cancelled"]


def test_a_member_streams_their_own_run_and_the_admin_sees_it_too(live_server, alice, bob):
    run = make_run(bob, finish="run.completed")
    assert seqs(read_all(events_url(live_server.url, run.id), bob.auth)[1]) == [1, 2]
    assert seqs(read_all(events_url(live_server.url, run.id), alice.auth)[1]) == [1, 2]


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert body["trace_id"] == response.headers["x-trace-id"]
    return body


def test_missing_or_bad_token_is_a_json_401(live_server, alice):
    run = make_run(alice)
    url = events_url(live_server.url, run.id)
    missing = httpx.get(url, timeout=TIMEOUT)
    assert_error(missing, 401, "auth.missing_token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_error(httpx.get(url, headers={"Authorization": "Bearer ak-" + "0" * 64}, timeout=TIMEOUT),
                 401, "auth.invalid_api_key")
    assert_error(httpx.get(url, headers={"Authorization": "Bearer nonsense"}, timeout=TIMEOUT),
                 401, "auth.invalid_token")
    # The token is checked before the parameters: no caller learns anything from a bad cursor.
    assert_error(httpx.get(f"{url}?after_seq=abc", timeout=TIMEOUT), 401, "auth.missing_token")


def test_runs_the_caller_may_not_see_are_a_json_404(live_server, alice, bob, charlie):
    run = make_run(alice)
    for actor, run_id in [(charlie, run.id), (bob, run.id), (alice, "not-a-uuid"),
                          (alice, "00000000-0000-0000-0000-000000000000")]:
        assert_error(httpx.get(events_url(live_server.url, run_id), headers=actor.auth, timeout=TIMEOUT),
                     404, "runs.not_found")


@pytest.mark.parametrize("query,field", [("after_seq=-1", "after_seq"), ("after_seq=abc", "after_seq"),
                                         ("after_seq=1.5", "after_seq"), ("follow=maybe", "follow")])
def test_bad_parameters_are_a_json_422_naming_the_field(live_server, alice, query, field):
    run = make_run(alice)
    url = f"{events_url(live_server.url, run.id)}?{query}"
    body = assert_error(httpx.get(url, headers=alice.auth, timeout=TIMEOUT), 422, "validation.error")
    assert field in body["details"]["fields"]
