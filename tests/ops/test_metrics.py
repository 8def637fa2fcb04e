"""Prometheus metrics: Daphne's `/metrics` and `runagents --metrics-port`, read as Prometheus reads
them (prometheus_client.parser), moving as runs are created, executed and streamed; the token
rule; and bounded labels (URL patterns, never an id)."""
from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import pytest
from django.urls import resolve
from django.utils import timezone

from arkloop.metrics import UNMATCHED, route_label
from runs.models import Run
from runs.runner.leases import lease_release
from runs.runner.recovery import runs_reap_expired_leases
from runs.runner.telemetry import tool_label
from runs.services import run_input_provide
from runs.stream.asgi import STREAM_ROUTE
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.ops.scrape import parse, scrape
from tests.runner.processes import RunnerProcess, wait_until
from tests.runs.stories import hold, park_for_input
from tests.servers import DaphneServer, free_port
from tests.stream.sse_client import events_url, read_all

ID_LIKE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|[0-9a-f]{16,}", re.I)
UUID = "5f0c2a9e-3d1b-4c57-9a53-0f2f6d1c9b77"


def local_scrape(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.content.decode())


def create_run(actor, content: str) -> tuple[str, str]:
    thread_id = actor.client.post("/v1/threads", {"title": "metrics"}).json()["id"]
    actor.client.post(f"/v1/threads/{thread_id}/messages", {"content": content})
    response = actor.client.post(f"/v1/threads/{thread_id}/runs", {})
    assert response.status_code == 201, response.content
    return thread_id, response.json()["run_id"]


def stub(**script) -> str:
    return "/stub " + json.dumps(script)


# --- labels ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "label"), [
    (f"/v1/runs/{UUID}", "/v1/runs/{run_id}"),
    (f"/v1/runs/{UUID}:cancel", "/v1/runs/{run_id}:cancel"),
    (f"/v1/threads/{UUID}/runs", "/v1/threads/{thread_id}/runs"),
    (f"/v1/threads/{UUID}/messages", "/v1/threads/{id}/messages"),
    (f"/v1/runs/{UUID}/events", STREAM_ROUTE),
    ("/v1/threads", "/v1/threads"),
    (f"/v1/{UUID}/anything", UNMATCHED),
    (f"/admin/runs/run/{UUID}/change/", "/admin/runs/run/{object_id}/change/"),
])
def test_route_label_is_the_url_pattern_never_the_path(path, label):
    assert route_label(resolve(path)) == label


def test_tool_labels_are_bounded():
    assert tool_label("calculator") == "calculator"
    assert tool_label("mcp__github__create_issue") == "mcp"
    assert tool_label(f"tool-{UUID}") == "other"


def test_requests_are_counted_by_pattern_method_and_status(alice, anonymous):
    before = local_scrape(anonymous)
    alice.client.get(f"/v1/runs/{UUID}")
    alice.client.generic("BREW", "/v1/threads")
    anonymous.get("/healthz"), anonymous.get("/readyz"), anonymous.get(f"/v1/nothing/{UUID}")
    after = local_scrape(anonymous)
    name = "arkloop_http_requests_total"
    assert after.value(name, method="GET", route="/v1/runs/{run_id}", status="404") == \
        before.value(name, method="GET", route="/v1/runs/{run_id}", status="404") + 1
    assert after.value(name, method="OTHER", route="/v1/threads", status="405") == \
        before.value(name, method="OTHER", route="/v1/threads", status="405") + 1
    assert after.value(name, method="GET", route=UNMATCHED, status="404") >= 1
    assert after.total("arkloop_http_request_duration_seconds_count", route="/v1/runs/{run_id}") >= 1
    assert not {"/healthz", "/readyz", "/metrics"} & {s["route"] for s in after.series(name)}
    assert not ID_LIKE.search(" ".join(after.label_values()))


def test_database_gauges_read_active_runs_and_the_oldest_unclaimed(alice, anonymous):
    _, run_id = create_run(alice, "hello")
    Run.objects.filter(pk=run_id).update(created_at=timezone.now() - dt.timedelta(seconds=600))
    scraped = local_scrape(anonymous)
    assert scraped.value("arkloop_runs_active", status="running") == 1
    assert scraped.value("arkloop_runs_active", status="waiting_for_input") == 0
    assert scraped.value("arkloop_runs_oldest_unclaimed_age_seconds") >= 600
    # Claimed by a live runner: nobody waits any more.
    Run.objects.filter(pk=run_id).update(attempt=1, lease_owner="runner-1",
                                         lease_expires_at=timezone.now() + dt.timedelta(seconds=60))
    assert local_scrape(anonymous).value("arkloop_runs_oldest_unclaimed_age_seconds") == 0
    # Its runner died: it waits again, since its lease expired.
    Run.objects.filter(pk=run_id).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=30))
    assert 30 <= local_scrape(anonymous).value("arkloop_runs_oldest_unclaimed_age_seconds") < 600


def test_a_run_given_back_waits_since_it_was_given_back(alice, anonymous, monkeypatch):
    """Released at a runner's shutdown, reaped, or answered after waiting for input: the gauge counts
    the run's wait from that moment (an outage of every runner after a deploy still shows)."""
    def oldest() -> float:
        return local_scrape(anonymous).value("arkloop_runs_oldest_unclaimed_age_seconds")

    def at(seconds_ago: float) -> None:
        monkeypatch.setattr(timezone, "now", lambda: real_now() - dt.timedelta(seconds=seconds_ago))

    real_now = timezone.now
    _, run_id = create_run(alice, "hello")
    Run.objects.filter(pk=run_id).update(attempt=1, lease_owner="runner-1",
                                         lease_expires_at=real_now() + dt.timedelta(seconds=60))
    at(300)
    assert lease_release(run_id=run_id, attempt=1, owner="runner-1")
    monkeypatch.setattr(timezone, "now", real_now)
    assert 300 <= oldest() < 400

    hold(run_id, seconds=-1)  # claimed again; its runner died, and the lease is reaped now
    assert runs_reap_expired_leases() == [run_id]
    assert 0 <= oldest() < 100  # reaped just now

    park_for_input(run_id)
    assert oldest() == 0  # waiting for the user, not for a runner
    at(120)
    run_input_provide(run=Run.objects.get(pk=run_id), content="yes")
    monkeypatch.setattr(timezone, "now", real_now)
    assert 120 <= oldest() < 200


def test_metrics_text_declares_the_types(anonymous, db):
    types = local_scrape(anonymous).types
    assert types["arkloop_http_requests"] == "counter"
    assert types["arkloop_http_request_duration_seconds"] == "histogram"
    assert types["arkloop_sse_streams_open"] == "gauge"
    assert types["arkloop_sse_events_sent"] == "counter"
    assert types["arkloop_runs_active"] == "gauge"
    assert types["arkloop_runs_oldest_unclaimed_age_seconds"] == "gauge"


# --- real Daphne and a real runner -------------------------------------------------------------------

@pytest.fixture
def receiver():
    with WebhookReceiver() as receiver:
        yield receiver


def test_metrics_move_as_runs_are_created_executed_and_streamed(live_server, alice, database_url, settings, receiver):
    daphne = f"{live_server.url}/metrics"
    before = scrape(daphne)
    settings.ARKLOOP_ALLOW_PRIVATE_URLS = True  # the receiver listens on 127.0.0.1
    hook = alice.client.post("/v1/webhooks", {"url": receiver.url, "events": ["run.completed", "run.failed"]})
    assert hook.status_code == 201, hook.content
    script = stub(tools=[{"name": "calculator", "arguments": {"expression": "6*7"}},
                         {"name": f"mcp__evil__{UUID}", "arguments": {}}], reply="It is 42.")
    with httpx.Client(base_url=live_server.url, headers=alice.auth, timeout=20) as http:
        thread_id = http.post("/v1/threads", json={"title": "m"}).json()["id"]
        http.post(f"/v1/threads/{thread_id}/messages", json={"content": script})
        run_id = http.post(f"/v1/threads/{thread_id}/runs", json={}).json()["run_id"]
        failing = http.post("/v1/threads", json={"title": "f"}).json()["id"]
        http.post(f"/v1/threads/{failing}/messages", json={"content": stub(fail="provider.bad_request")})
        failed_id = http.post(f"/v1/threads/{failing}/runs", json={}).json()["run_id"]

    created = scrape(daphne)
    runs_route = {"method": "POST", "route": "/v1/threads/{thread_id}/runs", "status": "201"}
    assert created.value("arkloop_http_requests_total", **runs_route) == \
        before.value("arkloop_http_requests_total", **runs_route) + 2
    assert created.value("arkloop_runs_active", status="running") == 2
    assert created.value("arkloop_runs_oldest_unclaimed_age_seconds") > 0

    port = free_port()
    with RunnerProcess(database_url, "--metrics-port", str(port), "--concurrency", "4",
                       ARKLOOP_ALLOW_PRIVATE_URLS="true"):
        wait_until(lambda: Run.objects.filter(pk__in=[run_id, failed_id], status__in=["completed", "failed"]).count()
                   == 2, what="both runs to finish")
        wait_until(lambda: scrape(f"http://127.0.0.1:{port}/metrics").value(
            "arkloop_webhook_deliveries_total", outcome="delivered") == 2, what="both outcomes to be delivered")
        runner = scrape(f"http://127.0.0.1:{port}/metrics")
    run = Run.objects.get(pk=run_id)
    assert run.status == "completed"
    assert runner.value("arkloop_runs_finished_total", status="completed", error_class="") == 1
    assert runner.value("arkloop_runs_finished_total", status="failed", error_class="provider.bad_request") == 1
    assert runner.value("arkloop_run_queue_wait_seconds_count") == 2
    model = {"provider": "stub", "model": run.model}
    assert runner.value("arkloop_llm_tokens_total", type="input", **model) == run.total_input_tokens > 0
    assert runner.value("arkloop_llm_tokens_total", type="output", **model) == run.total_output_tokens > 0
    assert runner.value("arkloop_llm_cost_usd_total", **model) == pytest.approx(float(run.total_cost_usd))
    assert runner.value("arkloop_llm_time_to_first_token_seconds_count", **model) >= 2  # two turns
    assert runner.value("arkloop_tool_calls_total", tool="calculator", outcome="ok") == 1
    assert runner.value("arkloop_tool_calls_total", tool="mcp", outcome="denied") == 1
    assert runner.value("arkloop_runner_slots", state="busy") + runner.value("arkloop_runner_slots", state="free") == 4
    assert runner.value("arkloop_webhook_deliveries_total", outcome="retry") == 0

    response, frames = read_all(events_url(live_server.url, run_id), alice.auth)
    assert response.status_code == 200 and frames[-1].event == "run.completed"
    wait_until(lambda: scrape(daphne).value("arkloop_sse_streams_open") == before.value("arkloop_sse_streams_open"),
               what="the stream to be closed")
    streamed = scrape(daphne)
    sent = "arkloop_sse_events_sent_total"
    assert streamed.value(sent) == before.value(sent) + len(frames)
    assert streamed.value("arkloop_http_requests_total", method="GET", route=STREAM_ROUTE, status="200") == \
        before.value("arkloop_http_requests_total", method="GET", route=STREAM_ROUTE, status="200") + 1
    assert streamed.value("arkloop_runs_active", status="running") == 0

    ids = {run_id, failed_id, thread_id, failing, str(alice.org.pk), str(alice.user.pk), UUID}
    for scraped in (created, runner, streamed):
        values = " ".join(scraped.label_values())
        assert not ID_LIKE.search(values) and not any(i in values for i in ids), values


def test_open_streams_are_counted_while_open(live_server, alice):
    _, run_id = create_run(alice, stub(ask="Which city?"))  # no runner: the stream stays open
    daphne = f"{live_server.url}/metrics"
    before = scrape(daphne).value("arkloop_sse_streams_open")
    with httpx.Client(timeout=20) as http, http.stream("GET", events_url(live_server.url, run_id),
                                                       headers=alice.auth) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: a dropped iterator closes the response
        assert next(lines) == "id: 1"  # the stream is being served
        assert scrape(daphne).value("arkloop_sse_streams_open") == before + 1
    wait_until(lambda: scrape(daphne).value("arkloop_sse_streams_open") == before, what="the stream to close")


def test_metrics_token_is_required_when_set(database_url, transactional_db):
    token = "metrics-token-0123456789"
    port = free_port()
    with DaphneServer(database_url=database_url, ARKLOOP_METRICS_TOKEN=token) as server, \
            RunnerProcess(database_url, "--metrics-port", str(port), ARKLOOP_METRICS_TOKEN=token):
        for url in (f"{server.url}/metrics", f"http://127.0.0.1:{port}/metrics"):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"},
                            {"Authorization": f"Bearer {token}x"}):
                refused = httpx.get(url, headers=headers, timeout=20)
                assert refused.status_code == 401, (url, headers)
                assert "arkloop_" not in refused.text and refused.headers["WWW-Authenticate"].startswith("Bearer")
            scraped = scrape(url, token=token)
            assert scraped.types  # parsed families
        assert httpx.get(f"{server.url}/healthz", timeout=20).status_code == 200  # probes need no token


def test_runagents_refuses_a_metrics_port_in_use(database_url, transactional_db):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        runner = RunnerProcess(database_url, "--metrics-port", str(taken.getsockname()[1]),
                               "--metrics-addr", "127.0.0.1")
        runner.spawn()
        assert runner.process.wait(timeout=60) != 0
        assert "cannot serve metrics" in runner.log()
        runner.log_file.close()
