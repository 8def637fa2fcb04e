"""W3C `traceparent`: a valid one sets the request's trace id (X-Trace-Id, the error envelope, the
run it creates and so every event of that run, also those the runner writes); an invalid one is
ignored and the request gets a fresh id."""
from __future__ import annotations

import httpx
import pytest

from arkloop.tracing import traceparent_trace_id
from runs.models import RunEvent
from tests.runner.helpers import run_once, start, stub
from tests.stream.sse_client import events_url, read_all

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
VALID = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize("header", [
    VALID,
    f"00-{TRACE}-00f067aa0ba902b7-00",            # not sampled: still the caller's trace
    f"  {VALID}\t",                               # optional whitespace around the value
    f"cc-{TRACE}-00f067aa0ba902b7-01-what-comes-next",  # a later version may append fields
])
def test_valid_traceparent_is_the_trace_id(header):
    assert traceparent_trace_id(header) == TRACE


@pytest.mark.parametrize("header", [
    "", "garbage", VALID.upper(), f"ff-{TRACE}-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01",
    f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE}-00f067aa0ba902b7-01-extra", f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",
    f"00-{TRACE}x-00f067aa0ba902b7-01", f"00_{TRACE}_00f067aa0ba902b7_01", f"0-{TRACE}-00f067aa0ba902b7-01",
    f"00-{TRACE}-00f067aa0ba902b7-1", f"00-{TRACE}-00f067aa0ba902b7-01,{VALID}", f"cc-{TRACE}-00f067aa0ba902b7-01x",
    VALID + "-" + "x" * 1000, "00-\u0664" + TRACE[1:] + "-00f067aa0ba902b7-01",
])
def test_invalid_traceparent_is_ignored(header, alice):
    assert traceparent_trace_id(header) is None
    response = alice.client.get("/v1/threads", HTTP_TRACEPARENT=header)
    assert response.status_code == 200 and response["X-Trace-Id"] != TRACE and len(response["X-Trace-Id"]) == 32


def test_traceparent_sets_the_header_and_the_error_envelope(alice):
    response = alice.client.get("/v1/runs/not-a-run", HTTP_TRACEPARENT=VALID)
    assert response.status_code == 404
    assert response["X-Trace-Id"] == TRACE and response.json()["trace_id"] == TRACE


def test_requests_without_traceparent_get_fresh_ids(alice):
    ids = {alice.client.get("/v1/threads")["X-Trace-Id"] for _ in range(3)}
    assert len(ids) == 3 and TRACE not in ids


@pytest.mark.django_db(transaction=True)
def test_a_run_keeps_the_trace_of_the_request_that_created_it(alice):
    thread_id = alice.client.post("/v1/threads", {"title": "t"}).json()["id"]
    alice.client.post(f"/v1/threads/{thread_id}/messages",
                      {"content": stub(tools=[{"name": "echo", "arguments": {"text": "hi"}}], reply="done")})
    created = alice.client.post(f"/v1/threads/{thread_id}/runs", {}, HTTP_TRACEPARENT=VALID)
    assert created.status_code == 201 and created["X-Trace-Id"] == TRACE
    run_id = created.json()["run_id"]
    assert created.json()["trace_id"] == TRACE
    assert alice.client.get(f"/v1/runs/{run_id}").json()["trace_id"] == TRACE
    run_once()  # the runner continues the run's trace: every event it writes carries it
    events = list(RunEvent.objects.filter(run_id=run_id).order_by("seq").values_list("type", "data"))
    assert events[-1][0] == "run.completed" and len(events) > 4
    assert {data["trace_id"] for _, data in events} == {TRACE}
    # A later request about the run has its own trace; the run keeps its own.
    other = alice.client.get(f"/v1/runs/{run_id}")
    assert other["X-Trace-Id"] != TRACE and other.json()["trace_id"] == TRACE


def test_retry_takes_the_trace_of_its_request(alice, transactional_db):
    _, run_id = start(alice, "hello")
    run_once()
    thread_id = alice.client.get(f"/v1/runs/{run_id}").json()["thread_id"]
    retried = alice.client.post(f"/v1/threads/{thread_id}:retry", {}, HTTP_TRACEPARENT=VALID)
    assert retried.status_code == 201 and retried.json()["trace_id"] == TRACE


def test_event_stream_answers_in_the_callers_trace(live_server, alice):
    _, run_id = start(alice, "hello")
    response, frames = read_all(events_url(live_server.url, run_id, follow="false"),
                                {**alice.auth, "traceparent": VALID})
    assert response.status_code == 200 and response.headers["X-Trace-Id"] == TRACE
    run_trace = alice.client.get(f"/v1/runs/{run_id}").json()["trace_id"]
    assert frames and all(frame.data["data"]["trace_id"] == run_trace != TRACE for frame in frames)
    refused = httpx.get(events_url(live_server.url, run_id), headers={"traceparent": VALID}, timeout=20)
    assert refused.status_code == 401 and refused.json()["trace_id"] == TRACE == refused.headers["X-Trace-Id"]
