"""OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local collector (tests/fakes/
otlp_sink.py, real OTLP/HTTP protobuf), Daphne exports a span per API request and the runner an
`invoke_agent` span per run execution with `chat` and `execute_tool` spans under it, all in the
run's trace and with the GenAI attributes. Without the variable nothing of OpenTelemetry loads."""
from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from django.db import connection

from runs.models import Run
from tests.fakes.otlp_sink import OtlpSink
from tests.runner.processes import RunnerProcess, wait_until
from tests.servers import ROOT, DaphneServer, subprocess_env
from tests.stream.sse_client import events_url, read_all

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
CLIENT, INTERNAL, SERVER = 3, 1, 2  # OTLP span kinds


@pytest.fixture
def traced(database_url, transactional_db):
    """A collector, and Daphne and a runner exporting to it (short batch delays)."""
    with OtlpSink() as sink:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with DaphneServer(database_url=database_url, **env) as daphne, RunnerProcess(database_url, **env):
            yield sink, daphne


def by_name(spans, name):
    found = [span for span in spans if span.name == name]
    assert found, (name, [s.name for s in spans])
    return found


def test_a_run_is_one_trace_from_the_request_to_its_tool_calls(traced, alice):
    sink, daphne = traced
    script = "/stub " + json.dumps({"tools": [{"name": "echo", "arguments": {"text": "hi"}}], "reply": "done"})
    with httpx.Client(base_url=daphne.url, headers=alice.auth, timeout=20) as http:
        thread_id = http.post("/v1/threads", json={"title": "traced"}).json()["id"]
        http.post(f"/v1/threads/{thread_id}/messages", json={"content": script})
        created = http.post(f"/v1/threads/{thread_id}/runs", json={},
                            headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        run_id = created.json()["run_id"]
        assert created.json()["trace_id"] == TRACE == created.headers["X-Trace-Id"]
        http.get("/healthz"), http.get("/readyz"), http.get("/metrics")
    wait_until(lambda: Run.objects.get(pk=run_id).status == "completed", what="the run to complete")
    _, frames = read_all(events_url(daphne.url, run_id), {**alice.auth, "traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert frames[-1].event == "run.completed"
    run = Run.objects.get(pk=run_id)
    wanted = {"POST /v1/threads/{thread_id}/runs", "GET /v1/runs/{run_id}/events", f"invoke_agent {run.persona_id}",
              f"chat {run.model}", "execute_tool echo"}
    wait_until(lambda: wanted <= {span.name for span in sink.of_trace(TRACE)}, what="the run's spans")
    spans = sink.of_trace(TRACE)

    request = by_name(spans, "POST /v1/threads/{thread_id}/runs")[0]
    assert request.service == "arkloop-api" and request.kind == SERVER and request.parent_span_id == PARENT
    assert by_name(spans, "GET /v1/runs/{run_id}/events")[0].kind == SERVER

    agent = by_name(spans, f"invoke_agent {run.persona_id}")[0]
    assert agent.service == "arkloop-runner"
    common = {"gen_ai.conversation.id": thread_id, "gen_ai.agent.name": run.persona_id}
    assert agent.attributes.items() >= {**common, "gen_ai.operation.name": "invoke_agent",
                                        "gen_ai.request.model": run.model, "arkloop.run.id": run_id,
                                        "gen_ai.usage.input_tokens": run.total_input_tokens,
                                        "gen_ai.usage.output_tokens": run.total_output_tokens}.items()
    chats = by_name(spans, f"chat {run.model}")
    assert len(chats) == 2  # the tool turn and the reply
    for chat in chats:
        assert chat.parent_span_id == agent.span_id and chat.kind == CLIENT
        assert chat.attributes.items() >= {**common, "gen_ai.operation.name": "chat", "gen_ai.request.model": run.model,
                                           "gen_ai.provider.name": "stub"}.items()
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats) == run.total_input_tokens
    assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in chats) == run.total_output_tokens
    tool = by_name(spans, "execute_tool echo")[0]
    assert tool.parent_span_id == agent.span_id
    assert tool.attributes.items() >= {**common, "gen_ai.operation.name": "execute_tool",
                                       "gen_ai.tool.name": "echo"}.items()
    if connection.vendor == "postgresql":  # the psycopg instrumentation: queries under their request or run
        db_spans = [s for s in spans if s.attributes.get("db.system") == "postgresql"]
        assert {s.service for s in db_spans} == {"arkloop-api", "arkloop-runner"}
    everything = {span.name for span in sink.spans}
    assert not any(path in name for name in everything for path in ("healthz", "readyz", "/metrics"))


def test_without_traceparent_the_request_span_decides_the_trace_id(traced, alice):
    sink, daphne = traced
    with httpx.Client(base_url=daphne.url, headers=alice.auth, timeout=20) as http:
        response = http.get("/v1/runs/not-a-run")
    assert response.status_code == 404
    trace_id = response.headers["X-Trace-Id"]
    assert response.json()["trace_id"] == trace_id
    wait_until(lambda: any(span.name == "GET /v1/runs/{run_id}" for span in sink.of_trace(trace_id)),
               what="the request's span")  # its queries' spans may come in an earlier batch
    spans = sink.of_trace(trace_id)
    request = by_name(spans, "GET /v1/runs/{run_id}")[0]
    assert request.kind == SERVER and not request.parent_span_id
    # On PostgreSQL the request's queries (the key lookup) are spans under it.
    assert all(span.service == "arkloop-api" and span.parent_span_id for span in spans if span is not request)


def test_nothing_of_opentelemetry_loads_when_no_endpoint_is_set(database_url):
    """No SDK, exporter or instrumentation (the anthropic SDK imports OpenTelemetry's API itself,
    which without a provider is a no-op)."""
    probe = ("import sys, arkloop.asgi, runs.management.commands.runagents, runs.runner.worker\n"
             "from django.conf import settings\nfrom arkloop import otel\n"
             "loaded = ('opentelemetry.sdk', 'opentelemetry.instrumentation', 'opentelemetry.exporter')\n"
             "print(otel.ENABLED, sorted(m for m in sys.modules if m.startswith(loaded)),"
             " [m for m in settings.MIDDLEWARE if 'opentelemetry' in m])")
    env = subprocess_env(database_url)
    for name in [n for n in env if n.startswith("OTEL_")]:
        del env[name]
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False [] []"
